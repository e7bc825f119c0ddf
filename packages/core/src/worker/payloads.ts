/**
 * A replica's payloads: every connector class behind one interface. The output connector of the
 * stage (`SharedMemoryConnector`, the inline connector, or a class a plugin defines) stores what
 * `putPayload` gets; a received reference is read through the class its `via` names. The built-in
 * classes live in connectors/ (shm-connector.ts, inline-connector.ts); a plugin's module is
 * imported on first use.
 *
 * Imported by the worker SDK: node built-ins only.
 */
import { randomBytes } from 'node:crypto';
import {
  connectorConfigOf,
  outputConnectorOf,
  SHM_CONNECTOR,
  type OutputConnector,
} from '../connectors/connector-config.js';
import { INLINE_VIA, createInlineConnector } from '../connectors/inline-connector.js';
import { createPayloadConnectorInstance, type PayloadConnector } from '../connectors/payload-connector.js';
import { fetchRemotePayload, originOf, planeTls, type FetchAccess } from '../connectors/payload-fetch.js';
import { isPayloadRef, metaOf, type PayloadMeta, type PayloadRef } from '../connectors/payload-ref.js';
import { ShmConnector, SHM_VIA } from '../connectors/shm-connector.js';
import { poolLimitsOf } from '../connectors/shm-pool.js';
import { payloadDir } from '../connectors/shm-store.js';
import { CONTROL_ENV } from '../control/protocol.js';
import type { WorkerWelcome } from './types.js';
import { attributed, workerError } from './worker-error.js';

/** The payload side of a worker connection. */
export class WorkerPayloads {
  readonly outputConnector: OutputConnector;
  readonly #welcome: WorkerWelcome;
  readonly #ack: (key: string) => void;
  /** Unique in the run: keys and pool segments of this replica instance carry it. */
  readonly #tag = randomBytes(4).toString('hex');
  #seq = 0;
  /** Connector instances by `via` (created on first use). */
  readonly #connectors = new Map<string, Promise<PayloadConnector>>();
  readonly #env: Readonly<Record<string, string | undefined>>;
  #fetchAccess: FetchAccess | undefined;

  /** `ack` sends a `payload_ack` for a key; `env` holds the agent's OMNISTAGE_TLS_* files, if any. */
  constructor(
    welcome: WorkerWelcome,
    ack: (key: string) => void,
    env: Readonly<Record<string, string | undefined>> = {},
  ) {
    this.#welcome = welcome;
    this.#ack = ack;
    this.#env = env;
    this.outputConnector = outputConnectorOf(welcome.engine_args, Object.keys(welcome.connectors ?? {}));
  }

  async put(bytes: Uint8Array, meta: PayloadMeta = {}): Promise<PayloadRef> {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('putPayload needs a Uint8Array (or Buffer)');
    const out = this.outputConnector;
    const { stage_id, replica_id } = this.#welcome;
    const key = `s${stage_id}r${replica_id}_${this.#tag}_${(this.#seq++).toString(36)}`;
    const context = { key, meta: metaOf(meta) };
    if (!out.plugin)
      return this.#stamp(
        await (await this.#connector(out.type === SHM_CONNECTOR ? SHM_VIA : INLINE_VIA)).put(bytes, context),
      );
    const connector = await this.#connector(out.type);
    const ref = await attributed(
      () => connector.put(bytes, context),
      `connector "${out.type}" could not store a ${bytes.byteLength}-byte payload`,
    );
    const ok =
      isPayloadRef(ref) &&
      (ref.via === 'inline' || (ref.via === out.type && ref.key === key && ref.size === bytes.byteLength));
    if (!ok) {
      throw workerError(
        `connector "${out.type}" returned ${JSON.stringify(ref)?.slice(0, 200)} for a ${bytes.byteLength}-byte payload: not a reference {$payload: 1, via: "${out.type}", key: "${key}", size: ${bytes.byteLength}}`,
        'this is a bug in the plugin that defines the connector (see docs/plugins.md, "Payload connectors")',
      );
    }
    return ref;
  }

  async get(ref: PayloadRef, into?: Uint8Array): Promise<Buffer> {
    if (!isPayloadRef(ref))
      throw workerError(
        'getPayload needs a payload reference ({$payload: 1, key, size, via, ...})',
        'see docs/protocol.md, "Payloads"',
      );
    const origin = ref.via === SHM_VIA ? originOf(ref) : undefined;
    const plane = this.#welcome.payload_plane;
    // Stored on another host: fetched from its payload server (the head tells where in `origin`).
    if (origin !== undefined && plane !== undefined && origin.host_id !== plane.host_id)
      return fetchRemotePayload(ref, origin, this.#access(), into);
    const connector = await this.#connector(ref.via);
    if (ref.via === INLINE_VIA || ref.via === SHM_VIA) return asBuffer(await connector.get(ref, into));
    const bytes = await attributed(
      () => connector.get(ref, into),
      `connector "${ref.via}" could not give back payload ${ref.key}`,
    );
    if (!(bytes instanceof Uint8Array) || bytes.byteLength !== ref.size) {
      const got = bytes instanceof Uint8Array ? `${bytes.byteLength} bytes` : typeof bytes;
      throw workerError(
        `connector "${ref.via}" gave ${got} for payload ${ref.key}, its reference says ${ref.size} bytes`,
        'this is a bug in the plugin that defines the connector',
      );
    }
    return asBuffer(bytes);
  }

  ack(ref: PayloadRef | string): void {
    if (typeof ref === 'string') this.#ack(ref);
    else if (isPayloadRef(ref) && ref.via !== INLINE_VIA) this.#ack(ref.key);
  }

  /** Closes every connector instance created (replica shutdown). */
  close(): Promise<unknown>[] {
    return [...this.#connectors.values()].map(async (c) => (await c).close?.());
  }

  /** A shm reference says which host holds it, so that consumers on other hosts fetch it from there. */
  #stamp(ref: PayloadRef): PayloadRef {
    const plane = this.#welcome.payload_plane;
    if (ref.via !== SHM_VIA || plane === undefined) return ref;
    return { ...ref, origin: { host_id: plane.host_id, url: plane.url } };
  }

  #access(): FetchAccess {
    if (this.#fetchAccess !== undefined) return this.#fetchAccess;
    const plane = this.#welcome.payload_plane!;
    const tls = planeTls(plane, this.#env);
    const from = this.#env[CONTROL_ENV.hostAddress];
    return (this.#fetchAccess = {
      ...(from === undefined || from === '' ? {} : { local_address: from }),
      run_id: this.#welcome.run_id,
      token: plane.token,
      max_bytes: plane.max_bytes,
      timeout_ms: plane.timeout_ms,
      ...(tls === undefined ? {} : { tls }),
    });
  }

  /** This replica's instance of a connector class, by `via`. */
  #connector(via: string): Promise<PayloadConnector> {
    let instance = this.#connectors.get(via);
    if (instance === undefined) {
      instance =
        via === SHM_VIA
          ? Promise.resolve(this.#shm())
          : via === INLINE_VIA
            ? Promise.resolve(createInlineConnector(() => this.#connector(SHM_VIA)))
            : this.#plugin(via);
      this.#connectors.set(via, instance);
    }
    return instance;
  }

  #shm(): ShmConnector {
    const { run_id, payload_dir } = this.#welcome;
    const config = connectorConfigOf(this.#welcome.engine_args);
    const pooled = config?.['type'] === SHM_CONNECTOR ? poolLimitsOf(config) : poolLimitsOf(undefined);
    return new ShmConnector(
      { runId: run_id, role: 'worker' },
      {
        dir: payload_dir ?? payloadDir(),
        thresholdBytes: this.outputConnector.shmThresholdBytes,
        pool: { ...pooled, tag: this.#tag },
      },
    );
  }

  #plugin(name: string): Promise<PayloadConnector> {
    const url = this.#welcome.connectors?.[name];
    if (url === undefined) {
      return Promise.reject(
        workerError(
          `payload came through connector "${name}", which no plugin of this run defines`,
          `load the plugin that defines "${name}" (plugins: in the pipeline file, or --plugin)`,
        ),
      );
    }
    const cfg = connectorConfigOf(this.#welcome.engine_args);
    const { run_id, stage_id, replica_id } = this.#welcome;
    return createPayloadConnectorInstance(url, {
      name,
      role: 'worker',
      runId: run_id,
      stageId: stage_id,
      replicaId: replica_id,
      config: cfg?.['type'] === name ? { ...cfg } : {},
    });
  }
}

/** The same bytes as a Buffer, without a copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
