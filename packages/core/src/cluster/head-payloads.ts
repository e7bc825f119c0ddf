import type { Logger } from 'pino';
import type { PayloadConnector } from '../connectors/payload-connector.js';
import {
  DEFAULT_FETCH_TIMEOUT_MS,
  DEFAULT_MAX_FETCH_BYTES,
  fetchError,
  fetchRemotePayload,
  releaseRemotePayload,
  type FetchAccess,
  type PayloadPlane,
} from '../connectors/payload-fetch.js';
import type { PayloadOrigin, PayloadRef } from '../connectors/payload-ref.js';
import type { PayloadTracker } from '../connectors/payload-tracker.js';
import type { ChannelPayloads } from '../control/replica-channel.js';
import type { TlsMaterial } from '../control/tls-material.js';
import { derivePayloadToken } from './cluster-token.js';
import type { ReplicaRecord } from './discovery.js';
import { PayloadServer } from './payload-server.js';

/** What the head's side of the data plane needs of the head's options. */
export interface HeadPayloadOptions {
  secret: Buffer;
  hostId: string;
  bindHost: string;
  advertise?: string;
  tls?: TlsMaterial;
  maxPayloadBytes?: number;
  payloadPort?: number;
}

/** A release is a small request: it must not hold teardown for the length of a transfer. */
const RELEASE_TIMEOUT_MS = 5_000;

/**
 * The head's side of the data plane (docs/scale-out.md, "Payloads across hosts"): serves the
 * payloads of its local stages to other hosts, tells every replica where it is and the run's fetch
 * token (`payload_plane` in welcome), reads final outputs stored on other hosts for the caller
 * and frees payloads there on the last hold, dialling each host's payload server as its agent
 * published it (never an address a reference claims).
 */
export class PayloadPlaneOfHead {
  readonly #tracker: PayloadTracker;
  readonly #server: PayloadServer;
  readonly #o: HeadPayloadOptions;
  readonly #token: string;
  /** Payload servers by host id, as each agent registered them in etcd. */
  readonly #servers = new Map<string, string>();

  private constructor(tracker: PayloadTracker, server: PayloadServer, options: HeadPayloadOptions) {
    this.#tracker = tracker;
    this.#server = server;
    this.#o = options;
    this.#token = derivePayloadToken(options.secret, tracker.runId, 'fetch');
  }

  static async start(
    tracker: PayloadTracker,
    options: HeadPayloadOptions,
    logger: Logger,
  ): Promise<PayloadPlaneOfHead> {
    const server = await PayloadServer.start(
      {
        runId: tracker.runId,
        dir: tracker.dir,
        secret: options.secret,
        host: options.bindHost,
        port: options.payloadPort ?? 0,
        ...(options.tls === undefined ? {} : { tls: options.tls }),
        warn: (m) => logger.warn({ code: 'OMNI_WARN_PAYLOAD_SERVER' }, m),
      },
      options.advertise,
    );
    const plane = new PayloadPlaneOfHead(tracker, server, options);
    // Local replicas start after this: their welcome says where the head's payloads are served.
    tracker.plane = plane.#planeFor(options.hostId, server.url, true);
    tracker.useRemote({ hostId: options.hostId, connector: plane.#remoteConnector() });
    return plane;
  }

  /** `url` of the head's payload server. */
  get url(): string {
    return this.#server.url;
  }

  /** What a replica on another host is told: no payload directory (its agent's), its host's payload server. */
  forRemoteReplica(record: ReplicaRecord): ChannelPayloads {
    if (record.payloads !== undefined) this.#servers.set(record.host_id, record.payloads);
    const tracker = this.#tracker;
    return {
      dir: undefined,
      connectorModules: tracker.connectorModules,
      release: (key, holder) => tracker.release(key, holder),
      ...(record.payloads === undefined ? {} : { plane: this.#planeFor(record.host_id, record.payloads, false) }),
    };
  }

  #planeFor(hostId: string, url: string, local: boolean): PayloadPlane {
    const tls = this.#o.tls;
    return {
      host_id: hostId,
      url,
      token: this.#token,
      max_bytes: this.#o.maxPayloadBytes ?? DEFAULT_MAX_FETCH_BYTES,
      timeout_ms: DEFAULT_FETCH_TIMEOUT_MS,
      // The head's local replicas present the head's certificate; an agent's use their agent's (env).
      ...(tls === undefined ? {} : { tls: true, ...(local ? { tls_files: tls.files } : {}) }),
    };
  }

  #access(op: 'fetch' | 'release'): FetchAccess {
    const tls = this.#o.tls;
    return {
      run_id: this.#tracker.runId,
      token: derivePayloadToken(this.#o.secret, this.#tracker.runId, op),
      max_bytes: this.#o.maxPayloadBytes ?? DEFAULT_MAX_FETCH_BYTES,
      timeout_ms: op === 'fetch' ? DEFAULT_FETCH_TIMEOUT_MS : RELEASE_TIMEOUT_MS,
      ...(tls === undefined ? {} : { tls: { cert: tls.cert, key: tls.key, ca: tls.ca } }),
    };
  }

  #originOf(ref: PayloadRef): PayloadOrigin {
    const hostId = ref.origin?.host_id ?? '';
    const url = this.#servers.get(hostId);
    if (url === undefined)
      throw fetchError(
        `payload ${ref.key} names host ${JSON.stringify(hostId)}, which registered no payload server for this run`,
      );
    return { host_id: hostId, url };
  }

  #remoteConnector(): PayloadConnector {
    return {
      put: () => {
        throw new Error('the head stores no payloads on other hosts');
      },
      get: (ref) => fetchRemotePayload(ref, this.#originOf(ref), this.#access('fetch')),
      release: (ref) => releaseRemotePayload(ref, this.#originOf(ref), this.#access('release')),
    };
  }

  async close(): Promise<void> {
    await this.#server.close();
  }
}
