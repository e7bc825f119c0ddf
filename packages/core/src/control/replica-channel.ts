import type { Socket } from 'node:net';
import { OmniError } from '../errors.js';
import { stageHolder } from '../connectors/payload-tracker.js';
import { payloadDir } from '../connectors/shm-store.js';
import type { PayloadPlane } from '../connectors/payload-fetch.js';
import {
  encodeMessage,
  parseWorkerMessage,
  PHASES_VERSION,
  PROTOCOL_VERSION,
  type HelloMessage,
  type JsonObject,
  type OrchestratorMessage,
  type ReadyMessage,
  type WorkerMessage,
} from './protocol.js';
import { cancelled, LAUNCH_CANCELLED_HINT, replicaLabel } from '../error-messages.js';

/** How a channel ended: `error` is null for an orderly close by either side. */
export interface ChannelClose {
  error: OmniError | null;
}

/** What the orchestrator expects from one replica, and what it tells it in `welcome`. */
export interface ExpectOptions {
  stage_id: number;
  replica_id: number;
  engine_args?: JsonObject;
  metadata?: JsonObject;
  /** The run's payload hold book: where payloads go (welcome) and whom a `payload_ack` releases. */
  payloads?: ChannelPayloads;
  /** Grant init phases to a hello that declares them (the replica's locks can be held shared). */
  phases?: boolean;
  /** Heartbeat interval asked of the replica in `welcome` (absent: none asked). */
  heartbeat_ms?: number;
}

/** What a channel uses of the run's payload hold book (the PayloadTracker). */
export interface ChannelPayloads {
  /**
   * The run's payload directory, told to the replica in `welcome`; undefined for a replica on
   * another host (its agent's directory, in its env, holds its payloads).
   */
  readonly dir: string | undefined;
  /** The data plane between hosts (head mode), told to the replica in `welcome`. */
  readonly plane?: PayloadPlane | undefined;
  /** Plugin connector classes: name → module URL (in `welcome`). */
  readonly connectorModules: Readonly<Record<string, string>>;
  /** Releases `holder`'s hold of payload `key`. */
  release(key: string, holder: string): unknown;
}

type Listener = (message: WorkerMessage) => void;

/** Grace for a closing peer to read our last line before the socket is destroyed. */
const END_GRACE_MS = 1_000;

/**
 * The orchestrator's side of one replica's control connection, created by
 * `ControlServer.expect()` before the replica is spawned. The promises never cause unhandled
 * rejections: await the ones you need.
 */
export class ReplicaChannel {
  readonly stage_id: number;
  readonly replica_id: number;
  /** Resolves on a valid hello for this token; rejects if the peer is wrong or the channel closes first. */
  readonly hello: Promise<HelloMessage>;
  /** Resolves on the replica's `ready`; rejects if the connection fails or closes first. */
  readonly ready: Promise<ReadyMessage>;
  /** Resolves once, when the channel is closed for good. */
  readonly closed: Promise<ChannelClose>;

  readonly #welcome: {
    run_id: string;
    engine_args: JsonObject;
    metadata: JsonObject;
    heartbeat_ms: number | undefined;
  };
  readonly #payloads: ChannelPayloads | undefined;
  readonly #phases: boolean;
  #admit: ((hello: HelloMessage) => Promise<void>) | null = null;
  readonly #listeners = new Set<Listener>();
  #socket: Socket | null = null;
  #state: 'waiting' | 'connected' | 'closed' = 'waiting';
  #gotReady = false;
  #lastHeartbeat: number | null = null;
  #resolveHello!: (m: HelloMessage) => void;
  #rejectHello!: (e: OmniError) => void;
  #resolveReady!: (m: ReadyMessage) => void;
  #rejectReady!: (e: OmniError) => void;
  #resolveClosed!: (c: ChannelClose) => void;

  /** @internal created by ControlServer */
  constructor(run_id: string, opts: ExpectOptions) {
    this.stage_id = opts.stage_id;
    this.replica_id = opts.replica_id;
    this.#welcome = {
      run_id,
      engine_args: opts.engine_args ?? {},
      metadata: opts.metadata ?? {},
      heartbeat_ms: opts.heartbeat_ms,
    };
    this.#payloads = opts.payloads;
    this.#phases = opts.phases === true;
    this.hello = new Promise((resolve, reject) => {
      this.#resolveHello = resolve;
      this.#rejectHello = reject;
    });
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    // Mark as handled: a caller that only awaits `ready` must not crash on a `hello` rejection.
    this.hello.catch(() => undefined);
    this.ready.catch(() => undefined);
  }

  /** True between a valid hello and the close. */
  get connected(): boolean {
    return this.#state === 'connected';
  }

  /**
   * Epoch ms of the last sign of life of a replica that sends heartbeats (any message counts once
   * the first heartbeat came), or null when it never sent one.
   */
  get lastHeartbeat(): number | null {
    return this.#lastHeartbeat;
  }

  /** Writes one message; false when the replica is not (or no longer) connected. */
  send(message: OrchestratorMessage): boolean {
    const socket = this.#socket;
    if (this.#state !== 'connected' || socket === null || socket.destroyed) return false;
    socket.write(encodeMessage(message));
    return true;
  }

  /** Subscribes to every message after hello (ready, heartbeat, output, ...). Returns an unsubscribe. */
  onMessage(fn: Listener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Waits for `ready` until `deadline` (epoch ms) or abort: OMNI_ATTACH_TIMEOUT names whether
   * the replica never said hello or never became ready; abort gives OMNI_CANCELLED.
   */
  async waitReady(opts: { signal?: AbortSignal; deadline?: number } = {}): Promise<ReadyMessage> {
    const { signal, deadline = Number.POSITIVE_INFINITY } = opts;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      const onCancel = (): void =>
        reject(
          cancelled(`attaching ${replicaLabel(this)}`, {
            cause: signal?.reason,
            context: this.#context(),
            hint: LAUNCH_CANCELLED_HINT,
          }),
        );
      if (signal?.aborted === true) return onCancel();
      onAbort = onCancel;
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(deadline)) {
        timer = setTimeout(() => reject(this.#attachTimeout()), Math.max(0, deadline - Date.now()));
      }
    });
    try {
      return await Promise.race([this.ready, stop]);
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Closes the connection (or, before hello, cancels the expectation). Idempotent. */
  close(): void {
    this.#finish(null, 'the channel was closed by the orchestrator');
  }

  /**
   * Holds the welcome (so the replica does not start loading) until `fn(hello)` resolves; a
   * rejection fails the channel. Set before the replica is spawned.
   */
  admitWith(fn: (hello: HelloMessage) => Promise<void>): void {
    this.#admit = fn;
  }

  /** @internal the server found a valid hello for this channel's token */
  attach(socket: Socket, hello: HelloMessage): void {
    this.#socket = socket;
    this.#state = 'connected';
    socket.once('close', () => this.#onSocketClose());
    const admit = this.#admit;
    if (admit === null) return this.#welcomeAfter(hello);
    admit(hello).then(
      () => this.#welcomeAfter(hello),
      (err: unknown) => this.fail(err instanceof OmniError ? err : this.#protocol(String(err))),
    );
  }

  #welcomeAfter(hello: HelloMessage): void {
    if (this.#state !== 'connected') return;
    const tracker = this.#payloads;
    const connectors = tracker?.connectorModules ?? {};
    this.send({
      type: 'welcome',
      v: PROTOCOL_VERSION,
      run_id: this.#welcome.run_id,
      stage_id: this.stage_id,
      replica_id: this.replica_id,
      engine_args: this.#welcome.engine_args,
      metadata: this.#welcome.metadata,
      // The orchestrator's payload dir is authoritative: a replica's env may not carry OMNISTAGE_PAYLOAD_DIR.
      ...(tracker === undefined
        ? { payload_dir: payloadDir() }
        : tracker.dir === undefined
          ? {}
          : { payload_dir: tracker.dir }),
      ...(tracker?.plane === undefined ? {} : { payload_plane: tracker.plane }),
      ...(Object.keys(connectors).length > 0 ? { connectors: { ...connectors } } : {}),
      ...(this.phasesGranted(hello) ? { phases: PHASES_VERSION } : {}),
      ...(this.#welcome.heartbeat_ms === undefined ? {} : { heartbeat_ms: this.#welcome.heartbeat_ms }),
    });
    this.#resolveHello(hello);
  }

  /** True when this hello declared init phases and the orchestrator grants them (welcome says `phases`). */
  phasesGranted(hello: HelloMessage): boolean {
    return this.#phases && typeof hello.phases === 'number' && hello.phases >= PHASES_VERSION;
  }

  /** @internal true when this channel can still accept a connection */
  get waiting(): boolean {
    return this.#state === 'waiting';
  }

  /** @internal a line that arrived after the hello */
  receive(line: string): void {
    if (this.#state !== 'connected') return;
    let message: WorkerMessage;
    try {
      message = parseWorkerMessage(line);
      if (message.type === 'hello') throw this.#protocol('a second hello on the same connection');
    } catch (err) {
      this.fail(err instanceof OmniError ? err : this.#protocol(String(err)));
      return;
    }
    if (message.type === 'heartbeat' || this.#lastHeartbeat !== null) this.#lastHeartbeat = Date.now();
    if (message.type === 'ready') {
      if (!this.#gotReady) {
        this.#gotReady = true;
        this.#resolveReady(message);
      }
    } else if (message.type === 'payload_ack') {
      // This stage is done with a stored payload: release its hold (the bytes are freed with the last one).
      this.#payloads?.release(message.key, stageHolder(this.stage_id));
    }
    for (const fn of this.#listeners) {
      try {
        fn(message);
      } catch {
        // a listener bug must not kill the connection of a healthy replica
      }
    }
  }

  /** @internal the replica broke the protocol: tell it why, close, and fail pending waits */
  fail(err: OmniError): void {
    const contextual = new OmniError(err.code, err.message, {
      cause: err.cause,
      hint: err.hint,
      context: { ...err.context, ...this.#context() },
    });
    if (this.#state === 'connected') this.send({ type: 'error', code: contextual.code, message: contextual.message });
    this.#finish(contextual, contextual.message);
  }

  #onSocketClose(): void {
    if (this.#state === 'closed') return;
    const err = this.#gotReady
      ? null
      : new OmniError('OMNI_WORKER_EXITED', `${replicaLabel(this)} closed its control connection before ready`, {
          context: this.#context(),
          hint: 'the replica probably crashed while loading; see its last log lines',
        });
    this.#finish(err, err?.message ?? 'the replica closed its control connection');
  }

  #finish(error: OmniError | null, why: string): void {
    if (this.#state === 'closed') return;
    const wasWaiting = this.#state === 'waiting';
    this.#state = 'closed';
    const pending =
      error ??
      new OmniError(wasWaiting ? 'OMNI_CANCELLED' : 'OMNI_WORKER_EXITED', `${replicaLabel(this)}: ${why}`, {
        context: this.#context(),
        hint: 'the control channel closed before the replica became ready',
      });
    if (wasWaiting) this.#rejectHello(pending);
    if (!this.#gotReady) this.#rejectReady(pending);
    const socket = this.#socket;
    if (socket !== null && !socket.destroyed) {
      socket.end();
      setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
    }
    this.#resolveClosed({ error });
  }

  #attachTimeout(): OmniError {
    const phase = this.#state === 'waiting' ? 'hello' : 'ready';
    return new OmniError(
      'OMNI_ATTACH_TIMEOUT',
      phase === 'hello'
        ? `${replicaLabel(this)} never connected to the control socket`
        : `${replicaLabel(this)} connected but did not become ready in time`,
      {
        context: { ...this.#context(), attach_step: phase },
        hint:
          phase === 'hello'
            ? 'the worker must call connectToOrchestrator() (or speak the control protocol) at start-up; see its last log lines'
            : 'the engine is still loading or hung; raise stage_init_timeout if loading is just slow',
      },
    );
  }

  #protocol(message: string): OmniError {
    return new OmniError('OMNI_PROTOCOL', message, {
      context: this.#context(),
      hint: 'the replica must follow docs/protocol.md',
    });
  }

  #context() {
    return { stage_id: this.stage_id, replica_id: this.replica_id, phase: 'attach' };
  }
}
