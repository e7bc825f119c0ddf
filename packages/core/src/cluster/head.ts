import { EventEmitter } from 'node:events';
import { OmniError, toOmniError } from '../errors.js';
import type { ControlServer, PeerAddress } from '../control/server.js';
import type { HelloMessage, JsonObject } from '../control/protocol.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import type { TlsMaterial } from '../control/tls-material.js';
import { ControlReplicaConnection } from '../builtins/control-connection.js';
import type { RunServices } from '../orchestrate/run-services.js';
import type { RunningPipeline, StartedReplica } from '../orchestrate/running-pipeline.js';
import type { ReplicaPlan } from '../planning/types.js';
import { deriveReplicaToken, tokensMatch } from './cluster-token.js';
import { PayloadPlaneOfHead } from './head-payloads.js';
import type { Discovery, Registration, ReplicaChange, ReplicaRecord } from './discovery.js';
import { HTTP_LINK, RemoteReplicaProcess } from './remote-replica.js';
import { attachRemoteHttp, isAdvertisedHttp, remoteHttpPlan, type AdvertisedHttpRecord } from './remote-http.js';
import type { OmniHooks } from '../hooks/hooks.js';
import type { ReplicaConnection } from '../hooks/replica-handles.js';
import { cancelled, replicaLabel } from '../error-messages.js';

/** How a head publishes itself and whom it lets attach. */
export interface HeadOptions {
  discovery: Discovery;
  /** The cluster secret tokens are derived from (see cluster-token.ts). */
  secret: Buffer;
  hostId: string;
  /** Where the TCP control port binds (`--control-host`, default 127.0.0.1) and its port (0: any free one). */
  bindHost: string;
  port: number;
  /** The address agents' replicas dial (default: the bound address). */
  advertise?: string;
  ttlS: number;
  /** Mutual TLS on the control port (`--tls-*`): replicas must present a certificate signed by its CA. */
  tls?: TlsMaterial;
  fingerprint: unknown;
  configHash: string;
  /** The hooks: an HTTP engine an agent runs is attached through the `attach` hook, as locally. */
  hooks?: OmniHooks;
  /** The data plane: the largest payload a replica may fetch from another host (default 2 GiB). */
  maxPayloadBytes?: number;
  /** Port of the head's payload server (0 or absent: any free one). */
  payloadPort?: number;
}

interface RemoteEntry {
  readonly started: StartedReplica;
  readonly process: RemoteReplicaProcess;
  readonly incarnation: string;
}

const key = (stageId: number, replicaId: number): string => `${stageId}/${replicaId}`;

function toJsonObject(value: object): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}

/**
 * The head side of scale-out: publishes the run under a lease, lets replicas that agents started on
 * other hosts attach over TCP (their token checked against the incarnation registered in
 * discovery), builds their plan from its own captured stage plan, and adds them to or removes them
 * from the running pipeline as their leases and connections come and go.
 */
export class ClusterHead {
  readonly #services: RunServices;
  readonly #pipeline: RunningPipeline;
  readonly #options: HeadOptions;
  readonly #remote = new Map<string, RemoteEntry>();
  readonly #hosts = new Set<string>();
  readonly #changed = new EventEmitter();
  readonly #unwatch: (() => Promise<void>)[] = [];
  #registration: Registration | null = null;
  #payloads: PayloadPlaneOfHead | null = null;
  #closed = false;
  /** Aborted at close: attaches to remote HTTP engines still under way give up. */
  readonly #closing = new AbortController();
  /** Incarnations of remote HTTP engines being attached (`stage/replica@incarnation`). */
  readonly #attaching = new Set<string>();
  /** `tcp://HOST:PORT`, as published. */
  control = '';

  private constructor(services: RunServices, pipeline: RunningPipeline, options: HeadOptions) {
    this.#services = services;
    this.#pipeline = pipeline;
    this.#options = options;
    this.#changed.setMaxListeners(0);
  }

  /** Opens the TCP control port, watches the run's replicas and hosts, and publishes the head. */
  static async start(
    services: RunServices,
    pipeline: RunningPipeline,
    control: ControlServer,
    options: HeadOptions,
  ): Promise<ClusterHead> {
    const head = new ClusterHead(services, pipeline, options);
    control.resolveUnknownWith((hello, peer) => head.#resolve(control, hello, peer));
    const bound = await control.listenTcp({ host: options.bindHost, port: options.port }, options.tls);
    head.control = `tcp://${options.advertise ?? bound.host}:${bound.port}`;
    head.#payloads = await PayloadPlaneOfHead.start(pipeline.payloads, options, services.logger);
    const run = pipeline.runId;
    head.#unwatch.push(await options.discovery.watchReplicas(run, (change) => head.#onReplicaChange(change)));
    head.#unwatch.push(await options.discovery.watchHosts(run, (host, present) => head.#onHost(host, present)));
    await head.#publish();
    return head;
  }

  /** Hosts that registered for this run so far. */
  get hostsSeen(): string[] {
    return [...this.#hosts];
  }

  async #publish(): Promise<void> {
    const { discovery, ttlS, hostId, configHash, fingerprint } = this.#options;
    const reg = await discovery.register(ttlS);
    this.#registration = reg;
    await discovery.publishHead(
      reg,
      {
        run_id: this.#pipeline.runId,
        control: this.control,
        config_hash: configHash,
        host_id: hostId,
        since: Date.now(),
        ...(this.#options.tls ? { tls: true } : {}),
      },
      fingerprint,
    );
    void reg.lost.then((err) => {
      if (this.#closed) return;
      // etcd was unreachable for 2 × TTL: agents may have stopped their replicas; come back under a new lease.
      this.#services.logger.warn(
        { code: 'OMNI_WARN_LEASE_LOST' },
        `the head's etcd lease was lost (${err.message}); publishing the head again`,
      );
      void this.#publish().catch((e: unknown) =>
        this.#services.logger.error({ err: e }, 'publishing the head again failed'),
      );
    });
  }

  /** A hello with a token the control server was not told about: an agent's replica, if discovery and the secret agree. */
  async #resolve(control: ControlServer, hello: HelloMessage, peer: PeerAddress): Promise<ReplicaChannel | null> {
    const { stage_id, replica_id } = hello;
    const run_id = this.#pipeline.runId;
    const record = await this.#options.discovery.getReplica(run_id, stage_id, replica_id);
    const expected =
      record === null
        ? null
        : deriveReplicaToken(this.#options.secret, { run_id, stage_id, replica_id, incarnation: record.incarnation });
    if (record === null || record.state !== 'running' || expected === null || !tokensMatch(hello.token, expected)) {
      this.#services.logger.warn(
        { code: 'OMNI_WARN_REPLICA_REFUSED', peer: peer.address },
        `refused a replica claiming ${replicaLabel(hello)} (pid ${hello.pid}, from ${peer.address}): ` +
          (record === null
            ? 'no agent registered that replica'
            : 'its token is wrong or of an older incarnation (replayed or stale)'),
      );
      return null;
    }
    const template = this.#pipeline.plan.stages.find((s) => s.stage_id === stage_id)?.template;
    if (template === undefined) return null;
    // The remote replica's plan is the head's own stage plan, never what the agent says.
    const plan: ReplicaPlan = {
      ...template,
      replica_id,
      launch_mode: 'remote',
      metadata: { ...template.metadata, replica_id },
    };
    const channel = control.channelFor({
      stage_id,
      replica_id,
      engine_args: toJsonObject(plan.engine_args),
      metadata: toJsonObject({ ...plan.metadata, runtime_cfg: null }),
      payloads: this.#payloads!.forRemoteReplica(record),
    });
    if (record.address !== undefined && record.address !== peer.address) {
      // Address translation or an agent whose --advertise is not the address it dials from: worth knowing, not fatal.
      this.#services.logger.warn(
        { code: 'OMNI_WARN_REPLICA_ADDRESS_MISMATCH' },
        `${replicaLabel(hello)} of host ${record.host_id} (advertised ${record.address}) connected from ${peer.address}`,
      );
    }
    void this.#adopt(channel, plan, record, peer);
    return channel;
  }

  /** Once the remote replica is ready, it joins its stage's pool (fencing an older incarnation of the same id). */
  async #adopt(channel: ReplicaChannel, plan: ReplicaPlan, record: ReplicaRecord, peer: PeerAddress): Promise<void> {
    let ready;
    let hello;
    try {
      hello = await channel.hello;
      ready = await channel.ready;
    } catch {
      return; // it closed before ready: nothing joined
    }
    const process = new RemoteReplicaProcess(hello.pid, record.host_id, channel);
    const connection = new ControlReplicaConnection(channel, (ready.info ?? {}) as Record<string, unknown>);
    const entry = await this.#join(plan, record, process, connection, peer);
    void channel.closed.then(() => this.#detach(entry, 'its connection closed'));
  }

  /** An HTTP engine its agent found ready: the head attaches to it at the advertised address, then it joins the pool. */
  async #adoptHttp(record: AdvertisedHttpRecord): Promise<void> {
    const { hooks } = this.#options;
    const stage = this.#pipeline.plan.stages.find((s) => s.stage_id === record.stage_id);
    const pending = `${key(record.stage_id, record.replica_id)}@${record.incarnation}`;
    if (hooks === undefined || stage === undefined || this.#attaching.has(pending)) return;
    this.#attaching.add(pending);
    const plan = remoteHttpPlan(stage.template, record);
    const process = new RemoteReplicaProcess(record.pid ?? 0, record.host_id, HTTP_LINK);
    try {
      const connection = await attachRemoteHttp(
        {
          hooks,
          services: this.#services,
          runId: this.#pipeline.runId,
          runDir: this.#pipeline.runDir,
          signal: this.#closing.signal,
        },
        stage,
        plan,
        process,
      );
      // It may have left (or been replaced) while the head attached: only the registered incarnation joins.
      const now = await this.#options.discovery.getReplica(this.#pipeline.runId, record.stage_id, record.replica_id);
      if (this.#closed || now?.incarnation !== record.incarnation || now.state !== 'running') {
        connection.close();
        return;
      }
      const url = new URL(record.readiness_url);
      await this.#join(plan, record, process, connection, { address: url.hostname, port: Number(url.port) });
    } catch (err) {
      if (!this.#closed)
        this.#services.logger.warn(
          { code: 'OMNI_WARN_REMOTE_ATTACH_FAILED' },
          `${replicaLabel(record)} of host ${record.host_id} (${record.readiness_url}): the head could not attach to it: ${toOmniError(err).message}`,
        );
    } finally {
      this.#attaching.delete(pending);
    }
  }

  /** A remote replica ready for the head: it joins its stage's pool (fencing an older incarnation of the same id) and is marked attached. */
  async #join(
    plan: ReplicaPlan,
    record: ReplicaRecord,
    process: RemoteReplicaProcess,
    connection: ReplicaConnection,
    peer: PeerAddress,
  ): Promise<RemoteEntry> {
    const id = key(plan.stage_id, plan.replica_id);
    const old = this.#remote.get(id);
    if (old !== undefined) this.#detach(old, `fenced: incarnation ${record.incarnation} of the same replica attached`);
    const started = this.#pipeline.track(plan, process);
    started.host_id = record.host_id;
    started.connection = connection;
    const entry: RemoteEntry = { started, process, incarnation: record.incarnation };
    this.#remote.set(id, entry);
    const { stage_id, replica_id } = plan;
    this.#services.events.emit({
      type: 'replica:attached',
      stage_id,
      replica_id,
      host_id: record.host_id,
      peer_address: peer.address,
      pid: process.pid,
      incarnation: record.incarnation,
    });
    this.#changed.emit('change');
    // Its agent's attach phase (and device locks) ends when this mark appears.
    const attached = {
      stage_id,
      replica_id,
      host_id: record.host_id,
      incarnation: record.incarnation,
      peer: `${peer.address}:${peer.port}`,
      since: Date.now(),
    };
    if (this.#registration !== null)
      await this.#options.discovery
        .markAttached(this.#registration, this.#pipeline.runId, attached)
        .catch((err: unknown) =>
          this.#services.logger.warn(
            { code: 'OMNI_WARN_DISCOVERY_WRITE_FAILED', err },
            'marking a replica attached in etcd failed',
          ),
        );
    return entry;
  }

  #onReplicaChange(change: ReplicaChange): void {
    if (change.kind === 'put') {
      const { record } = change;
      const entry = this.#remote.get(key(record.stage_id, record.replica_id));
      if (entry !== undefined && record.incarnation !== entry.incarnation)
        this.#detach(entry, `fenced: its agent registered incarnation ${record.incarnation}`);
      else if (entry !== undefined && record.state === 'leaving')
        this.#detach(entry, 'its agent is shutting down (lease revoked)');
      // An HTTP engine dials nobody: the head attaches to it once its agent advertises it ready.
      if (isAdvertisedHttp(record) && this.#remote.get(key(record.stage_id, record.replica_id)) === undefined)
        void this.#adoptHttp(record);
      return;
    }
    const entry = this.#remote.get(key(change.stage_id, change.replica_id));
    if (entry === undefined) return;
    if (change.previous !== null && change.previous.incarnation !== entry.incarnation) return;
    this.#detach(
      entry,
      change.previous?.state === 'leaving'
        ? 'its agent left (lease revoked)'
        : 'its lease expired (host unreachable or agent dead)',
    );
  }

  #onHost(hostId: string, present: boolean): void {
    if (present && !this.#hosts.has(hostId)) {
      this.#hosts.add(hostId);
      this.#services.events.emit({ type: 'host:joined', host_id: hostId });
    } else if (!present) {
      this.#services.events.emit({ type: 'host:left', host_id: hostId });
      // Its lease expired: what its shared memory held is gone with it (or reaped by its next agent).
      const lost = this.#pipeline.payloads.dropHost(hostId);
      if (lost > 0)
        this.#services.logger.warn(
          { code: 'OMNI_WARN_PAYLOADS_LOST' },
          `host ${hostId} left: ${lost} payload(s) stored there are lost`,
        );
    }
  }

  #detach(entry: RemoteEntry, reason: string): void {
    const { started } = entry;
    if (started.detached !== undefined) return;
    started.detached = reason;
    started.stopping = true;
    entry.process.detach();
    this.#pipeline.untrack(started);
    const id = key(started.plan.stage_id, started.plan.replica_id);
    if (this.#remote.get(id) === entry) this.#remote.delete(id);
    this.#services.events.emit({
      type: 'replica:detached',
      stage_id: started.plan.stage_id,
      replica_id: started.plan.replica_id,
      host_id: entry.process.hostId,
      reason,
    });
    this.#changed.emit('change');
    void this.#options.discovery
      .clearAttached(this.#pipeline.runId, started.plan.stage_id, started.plan.replica_id, entry.incarnation)
      .catch(() => undefined);
  }

  /**
   * Resolves when every stage has at least `minReady(stage)` live replicas (local or remote); fails
   * when `timeoutMs` passes first, naming the stages still waiting and the hosts seen.
   */
  async waitReady(minReady: (stageId: number) => number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const missing = (): string[] =>
      this.#pipeline.plan.stages
        .filter((s) => this.#pipeline.liveReplicas(s.stage_id).length < minReady(s.stage_id))
        .map(
          (s) => `stage ${s.stage_id} (${this.#pipeline.liveReplicas(s.stage_id).length} of ${minReady(s.stage_id)})`,
        );
    if (missing().length === 0) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: OmniError): void => {
        clearTimeout(timer);
        this.#changed.off('change', check);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const check = (): void => {
        if (missing().length === 0) done();
      };
      const onAbort = (): void =>
        done(
          cancelled('bring-up', {
            hint: 'the head was stopped before every stage had a replica',
          }),
        );
      const timer = setTimeout(() => {
        const hosts = this.hostsSeen.length > 0 ? this.hostsSeen.join(', ') : 'none';
        done(
          new OmniError(
            'OMNI_INIT_TIMEOUT',
            `the pipeline did not have its stages' min_ready live replicas within ${timeoutMs / 1000}s (init_timeout); still waiting: ${missing().join(', ')}; hosts seen: ${hosts}`,
            {
              hint: 'start `omnistage agent FILE --etcd URL --stages N [--replicas N]` on hosts for each waiting stage, lower runtime.min_ready (or --min-ready), or raise --init-timeout',
            },
          ),
        );
      }, timeoutMs);
      this.#changed.on('change', check);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Withdraws the head (agents then stop their replicas) and stops watching. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new OmniError('OMNI_CANCELLED', 'the head is closing'));
    await Promise.all(this.#unwatch.map((u) => u()));
    await this.#payloads?.close();
    await this.#registration?.revoke();
  }
}
