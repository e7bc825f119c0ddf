import { isMainThread } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { fstatSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { OmniError } from '../errors.js';
import { LineDecoder } from '../control/framing.js';
import {
  CONTROL_ENV,
  encodeMessage,
  parseOrchestratorMessage,
  PROTOCOL_VERSION,
  type JsonObject,
  type JsonValue,
  type LogMessage,
  type RequestMessage,
  type WelcomeMessage,
  type WorkerMessage,
} from '../control/protocol.js';
import { connectorConfigOf, outputConnectorOf, type OutputConnector } from '../connectors/connector-config.js';
import { createPayloadConnectorInstance, type PayloadConnector } from '../connectors/payload-connector.js';
import { inlinePayloadRef, isPayloadRef, metaOf, type PayloadMeta, type PayloadRef } from '../connectors/payload-ref.js';
import { readPayload, writePayload } from '../connectors/shm-store.js';

// This module is the worker SDK: worker start-up time is benchmarked, so it imports node
// built-ins and our dependency-free protocol modules only.

/** The replica's configuration, as sent by the orchestrator in `welcome`. */
export type WorkerWelcome = Omit<WelcomeMessage, 'type' | 'v'>;

/** One request routed to this replica. */
export type WorkerRequest = Omit<RequestMessage, 'type'>;

/** Where a request handler sends its results. After `end`, `error` or an abort, writes are dropped. */
export interface RequestStream {
  /** Sends one partial result; returns false once the request is finished or aborted. */
  write(data: JsonValue): boolean;
  /** Sends the last result (default null) and finishes the request. */
  end(data?: JsonValue): void;
  /** Fails the request with a message; no further output is sent for it. */
  error(message: string): void;
  /** Aborted when the orchestrator sends `abort` for this request, or the worker shuts down. */
  readonly signal: AbortSignal;
}

export type RequestHandler = (request: WorkerRequest, stream: RequestStream) => void | Promise<void>;
export type ShutdownHandler = (reason: string) => void | Promise<void>;

/** A worker's attached control connection. */
export interface WorkerConnection {
  readonly welcome: WorkerWelcome;
  /** Tells the orchestrator the engine is loaded and requests may come. Call once. */
  ready(info?: JsonObject): void;
  /** Sets the request handler; requests that arrived earlier are delivered now. */
  onRequest(handler: RequestHandler): void;
  /** Runs before the worker exits (shutdown message, connection or stdin closed); bounded by `shutdownTimeoutMs`. */
  onShutdown(fn: ShutdownHandler): void;
  /** Sends a structured log line to the orchestrator. */
  log(level: LogMessage['level'], message: string): void;
  /** Closes the connection; like any close, this runs the shutdown handlers and (by default) exits 0. */
  close(): Promise<void>;
  /** Resolves when the connection is gone and the shutdown handlers have run. */
  readonly closed: Promise<void>;
  /**
   * The connector this replica's output payloads go through, from the welcome's engine args
   * (`omni_kv_config.connector_config`): `SharedMemoryConnector` (inline up to
   * `shm_threshold_bytes`, a shared-memory file above), a class a plugin defines (`plugin: true`:
   * every payload goes to its module's `put`), or the inline connector.
   */
  readonly outputConnector: OutputConnector;
  /**
   * Stores an output payload (a tensor, an image...) and resolves with the reference to put in the
   * output data: inline (base64) at or below the threshold, else written once to a shared-memory
   * file that the consumers read by key, or handed to the plugin class the stage sends over.
   * `bytes` may be reused once this settles.
   */
  putPayload(bytes: Uint8Array, meta?: PayloadMeta): Promise<PayloadRef>;
  /**
   * The bytes of a payload this replica received (inline: decoded; shm: the file by key, mapped
   * without a copy where the native mapper is built; a plugin class: its module's `get`). With
   * `into` (at least `ref.size` bytes), the payload is read into that buffer (a staging buffer the
   * engine reuses) and the result is a view of it.
   */
  getPayload(ref: PayloadRef, into?: Uint8Array): Promise<Buffer>;
  /**
   * Tells the orchestrator this replica is done with a payload it received (`payload_ack`), so its
   * file can be deleted once every consumer is done. No-op for inline payloads. Call it after use.
   */
  ackPayload(ref: PayloadRef | string): void;
}

export interface ConnectOptions {
  /** Where to read OMNISTAGE_* from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Exit the process with code 0 once the connection ends (default true). */
  exitProcess?: boolean;
  /** Upper bound for the shutdown handlers (default 5000 ms). */
  shutdownTimeoutMs?: number;
  /** Treat EOF on a piped stdin as "orchestrator gone" (default true; ignored when stdin is not a pipe). */
  watchStdin?: boolean;
  /** Send a heartbeat every this many ms (default 0: off). */
  heartbeatMs?: number;
  /** Give up when no welcome arrives within this time (default 30000 ms). */
  handshakeTimeoutMs?: number;
}

/**
 * Dials the orchestrator named in the environment (OMNISTAGE_CONTROL, OMNISTAGE_TOKEN,
 * OMNISTAGE_STAGE_ID, OMNISTAGE_REPLICA_ID, OMNISTAGE_RUN_ID), says hello and resolves with the
 * welcome. From then on the worker process exits (code 0) when the connection closes, when the
 * orchestrator sends `shutdown` (after the shutdown handlers, bounded) or when a piped stdin
 * reaches EOF, so a replica never outlives its orchestrator.
 */
export async function connectToOrchestrator(options: ConnectOptions = {}): Promise<WorkerConnection> {
  const env = options.env ?? process.env;
  const socketPath = required(env, CONTROL_ENV.socket);
  const token = required(env, CONTROL_ENV.token);
  const stage_id = requiredInt(env, CONTROL_ENV.stageId);
  const replica_id = requiredInt(env, CONTROL_ENV.replicaId);

  const socket = createConnection(socketPath);
  const lines = new SocketLines(socket);
  const welcome = await handshake(socket, lines, { token, stage_id, replica_id }, options.handshakeTimeoutMs ?? 30_000);
  return new Connection(socket, lines, welcome, options);
}

type LineSink = { line(line: string): void; error(err: OmniError): void };

/**
 * The one 'data' listener of the control socket. Lines go to the current sink; while there is
 * none (between the welcome and the connection object taking over) they are buffered, so a
 * request pipelined right after the welcome is not lost.
 */
class SocketLines {
  readonly #decoder = new LineDecoder();
  readonly #buffered: string[] = [];
  #sink: LineSink | null = null;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = this.#decoder.push(chunk);
      } catch (err) {
        this.#sink?.error(err as OmniError);
        return;
      }
      this.#buffered.push(...lines);
      this.#drain();
    });
  }

  setSink(sink: LineSink | null): void {
    this.#sink = sink;
    this.#drain();
  }

  #drain(): void {
    // Re-check the sink each time: a sink may hand over (set another, or null) mid-batch.
    for (let sink = this.#sink; sink !== null && this.#buffered.length > 0; sink = this.#sink) {
      sink.line(this.#buffered.shift() as string);
    }
  }
}

function handshake(
  socket: Socket,
  lines: SocketLines,
  ids: { token: string; stage_id: number; replica_id: number },
  timeoutMs: number,
): Promise<WelcomeMessage> {
  return new Promise((resolve, reject) => {
    const fail = (err: OmniError): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onConnect = (): void => {
      socket.write(encodeMessage({ type: 'hello', v: PROTOCOL_VERSION, ...ids, pid: process.pid }));
    };
    const onError = (err: Error): void => fail(workerError(`cannot reach the orchestrator: ${err.message}`));
    const onClose = (): void => fail(workerError('the orchestrator closed the connection during the handshake'));
    const onLine = (line: string): void => {
      try {
        const message = parseOrchestratorMessage(line);
        if (message.type === 'error') throw workerError(`the orchestrator rejected this worker: ${message.code}: ${message.message}`);
        if (message.type !== 'welcome') throw workerError(`expected welcome, got "${message.type}"`);
        if (message.v !== PROTOCOL_VERSION) throw workerError(`orchestrator speaks protocol v${message.v}, this worker v${PROTOCOL_VERSION}`);
        cleanup();
        resolve(message);
      } catch (err) {
        fail(err instanceof OmniError ? err : workerError(String(err)));
      }
    };
    const timer = setTimeout(() => fail(workerError(`no welcome from the orchestrator within ${timeoutMs} ms`)), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      lines.setSink(null); // buffer whatever follows the welcome for the connection object
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    socket.once('connect', onConnect);
    socket.on('error', onError);
    socket.once('close', onClose);
    lines.setSink({ line: onLine, error: fail });
  });
}

class Connection implements WorkerConnection {
  readonly welcome: WorkerWelcome;
  readonly closed: Promise<void>;
  readonly #socket: Socket;
  readonly #options: ConnectOptions;
  readonly #inflight = new Map<string, AbortController>();
  readonly #shutdownHandlers: ShutdownHandler[] = [];
  readonly #queued: WorkerRequest[] = [];
  #handler: RequestHandler | null = null;
  #readySent = false;
  #terminating: Promise<void> | undefined;
  #resolveClosed!: () => void;
  #heartbeat: NodeJS.Timeout | undefined;
  #stopStdin: (() => void) | undefined;
  readonly outputConnector: OutputConnector;
  #payloadSeq = 0;
  readonly #payloadTag = randomBytes(4).toString('hex');
  /** Instances of plugin connector classes, created on first use. */
  readonly #connectors = new Map<string, Promise<PayloadConnector>>();

  constructor(socket: Socket, lines: SocketLines, welcome: WelcomeMessage, options: ConnectOptions) {
    this.#socket = socket;
    this.#options = options;
    this.welcome = {
      run_id: welcome.run_id,
      stage_id: welcome.stage_id,
      replica_id: welcome.replica_id,
      engine_args: welcome.engine_args,
      metadata: welcome.metadata,
      ...(typeof welcome.payload_dir === 'string' && welcome.payload_dir !== '' ? { payload_dir: welcome.payload_dir } : {}),
      ...(welcome.connectors === undefined ? {} : { connectors: { ...welcome.connectors } }),
    };
    this.outputConnector = outputConnectorOf(welcome.engine_args, Object.keys(welcome.connectors ?? {}));
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    socket.on('error', () => undefined); // a reset is handled as a close
    socket.once('close', () => void this.#terminate('the control connection closed'));
    lines.setSink({ line: (line) => this.#onLine(line), error: (err) => this.#fatal(err) });
    const beat = options.heartbeatMs ?? 0;
    if (beat > 0) {
      this.#heartbeat = setInterval(() => this.#send({ type: 'heartbeat' }), beat);
      this.#heartbeat.unref();
    }
    if (options.watchStdin !== false) this.#stopStdin = watchStdinEof(() => void this.#terminate('stdin closed'));
  }

  ready(info?: JsonObject): void {
    if (this.#readySent) return;
    this.#readySent = true;
    this.#send(info === undefined ? { type: 'ready' } : { type: 'ready', info });
  }

  onRequest(handler: RequestHandler): void {
    this.#handler = handler;
    for (const request of this.#queued.splice(0)) this.#dispatch(request);
  }

  onShutdown(fn: ShutdownHandler): void {
    this.#shutdownHandlers.push(fn);
  }

  log(level: LogMessage['level'], message: string): void {
    this.#send({ type: 'log', level, message });
  }

  close(): Promise<void> {
    return this.#terminate('closed by the worker');
  }

  async putPayload(bytes: Uint8Array, meta: PayloadMeta = {}): Promise<PayloadRef> {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('putPayload needs a Uint8Array (or Buffer)');
    const connector = this.outputConnector;
    if (!connector.plugin && bytes.byteLength <= connector.shmThresholdBytes) return inlinePayloadRef(bytes, meta);
    const { stage_id, replica_id, run_id } = this.welcome;
    const key = `s${stage_id}r${replica_id}_${this.#payloadTag}_${(this.#payloadSeq++).toString(36)}`;
    if (connector.plugin) return this.#pluginPut(connector.type, bytes, key, metaOf(meta));
    writePayload(run_id, key, bytes, this.welcome.payload_dir);
    return { $payload: 1, key, size: bytes.byteLength, via: 'shm', ...metaOf(meta) };
  }

  async getPayload(ref: PayloadRef, into?: Uint8Array): Promise<Buffer> {
    if (!isPayloadRef(ref)) throw workerError('getPayload needs a payload reference ({$payload: 1, key, size, via, ...})', 'see docs/protocol.md, "Payloads"');
    if (ref.via === 'inline') return Buffer.from(ref.data_base64 ?? '', 'base64');
    if (ref.via === 'shm') {
      const dir = this.welcome.payload_dir;
      return readPayload(this.welcome.run_id, ref.key, { size: ref.size, ...(dir === undefined ? {} : { dir }), ...(into === undefined ? {} : { into }) });
    }
    const connector = await this.#connector(ref.via);
    const bytes = await attributed(() => connector.get(ref, into), `connector "${ref.via}" could not give back payload ${ref.key}`);
    if (!(bytes instanceof Uint8Array) || bytes.byteLength !== ref.size) {
      const got = bytes instanceof Uint8Array ? `${bytes.byteLength} bytes` : typeof bytes;
      throw workerError(`connector "${ref.via}" gave ${got} for payload ${ref.key}, its reference says ${ref.size} bytes`, 'this is a bug in the plugin that defines the connector');
    }
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  ackPayload(ref: PayloadRef | string): void {
    if (typeof ref === 'string') this.#send({ type: 'payload_ack', key: ref });
    else if (isPayloadRef(ref) && ref.via !== 'inline') this.#send({ type: 'payload_ack', key: ref.key });
  }

  async #pluginPut(name: string, bytes: Uint8Array, key: string, meta: PayloadMeta): Promise<PayloadRef> {
    const connector = await this.#connector(name);
    const ref = await attributed(() => connector.put(bytes, { key, meta }), `connector "${name}" could not store a ${bytes.byteLength}-byte payload`);
    const ok = isPayloadRef(ref) && (ref.via === 'inline' || (ref.via === name && ref.key === key && ref.size === bytes.byteLength));
    if (!ok) {
      throw workerError(
        `connector "${name}" returned ${JSON.stringify(ref)?.slice(0, 200)} for a ${bytes.byteLength}-byte payload: not a reference {$payload: 1, via: "${name}", key: "${key}", size: ${bytes.byteLength}}`,
        'this is a bug in the plugin that defines the connector (see docs/plugins.md, "Payload connectors")',
      );
    }
    return ref;
  }

  /** This replica's instance of a plugin connector class (its module is imported on first use). */
  #connector(name: string): Promise<PayloadConnector> {
    let instance = this.#connectors.get(name);
    if (instance === undefined) {
      const url = this.welcome.connectors?.[name];
      if (url === undefined) {
        return Promise.reject(
          workerError(
            `payload came through connector "${name}", which no plugin of this run defines`,
            `load the plugin that defines "${name}" (plugins: in the pipeline file, or --plugin)`,
          ),
        );
      }
      const cfg = connectorConfigOf(this.welcome.engine_args);
      const { run_id, stage_id, replica_id } = this.welcome;
      instance = createPayloadConnectorInstance(url, {
        name,
        role: 'worker',
        runId: run_id,
        stageId: stage_id,
        replicaId: replica_id,
        config: cfg?.['type'] === name ? { ...cfg } : {},
      });
      this.#connectors.set(name, instance);
    }
    return instance;
  }

  #send(message: WorkerMessage): boolean {
    if (this.#terminating !== undefined || this.#socket.destroyed) return false;
    this.#socket.write(encodeMessage(message));
    return true;
  }

  #onLine(line: string): void {
    if (this.#terminating !== undefined) return;
    let message;
    try {
      message = parseOrchestratorMessage(line);
    } catch (err) {
      this.#fatal(err);
      return;
    }
    switch (message.type) {
      case 'request': {
        const request: WorkerRequest = { request_id: message.request_id, input: message.input, params: message.params };
        if (this.#handler === null) this.#queued.push(request);
        else this.#dispatch(request);
        break;
      }
      case 'abort':
        this.#inflight.get(message.request_id)?.abort(new Error('aborted by the orchestrator'));
        this.#inflight.delete(message.request_id);
        break;
      case 'shutdown':
        void this.#terminate(message.reason ?? 'shutdown requested by the orchestrator');
        break;
      case 'error':
        process.stderr.write(`omnistage worker: orchestrator error ${message.code}: ${message.message}\n`);
        break;
      case 'welcome':
        this.#fatal(new Error('unexpected second welcome'));
        break;
    }
  }

  #dispatch(request: WorkerRequest): void {
    const id = request.request_id;
    if (this.#inflight.has(id)) {
      this.#send({ type: 'request_error', request_id: id, message: `request ${id} is already in flight` });
      return;
    }
    const controller = new AbortController();
    this.#inflight.set(id, controller);
    let seq = 0;
    let finished = false;
    // Once aborted the orchestrator has forgotten the request: send nothing more for it.
    const open = (): boolean => !finished && !controller.signal.aborted;
    const finish = (): void => {
      finished = true;
      if (this.#inflight.get(id) === controller) this.#inflight.delete(id);
    };
    const stream: RequestStream = {
      signal: controller.signal,
      write: (data) => open() && this.#send({ type: 'output', request_id: id, seq: seq++, data, done: false }),
      end: (data = null) => {
        if (!open()) return;
        this.#send({ type: 'output', request_id: id, seq: seq++, data, done: true });
        finish();
      },
      error: (message) => {
        if (!open()) return;
        this.#send({ type: 'request_error', request_id: id, message });
        finish();
      },
    };
    const handler = this.#handler;
    if (handler === null) return;
    try {
      const result = handler(request, stream);
      if (result instanceof Promise) result.catch((err: unknown) => stream.error(messageOf(err)));
    } catch (err) {
      stream.error(messageOf(err));
    }
  }

  #fatal(err: unknown): void {
    process.stderr.write(`omnistage worker: control protocol error: ${messageOf(err)}\n`);
    void this.#terminate('control protocol error');
  }

  /** Runs the shutdown handlers (bounded), closes the connection, and exits if configured. Once. */
  #terminate(reason: string): Promise<void> {
    // Never rejects: every caller may fire and forget it.
    this.#terminating ??= (async () => {
      try {
        clearInterval(this.#heartbeat);
        this.#stopStdin?.();
        for (const controller of this.#inflight.values()) controller.abort(new Error(reason));
        this.#inflight.clear();
        const handlers = Promise.allSettled([
          ...this.#shutdownHandlers.map(async (fn) => fn(reason)),
          ...[...this.#connectors.values()].map(async (c) => (await c).close?.()),
        ]);
        await bounded(handlers, this.#options.shutdownTimeoutMs ?? 5_000);
        this.#socket.end();
        this.#socket.destroy();
      } finally {
        this.#resolveClosed();
        if (this.#options.exitProcess !== false) process.exit(0);
      }
    })();
    return this.#terminating;
  }
}

/** Calls `onEof` when a piped stdin ends (the orchestrator holds the other end). Returns an unsubscribe. */
function watchStdinEof(onEof: () => void): (() => void) | undefined {
  // Inline engines run as threads of the orchestrator: fd 0 is the orchestrator's own stdin.
  if (!isMainThread) return undefined;
  try {
    const st = fstatSync(0);
    // Node gives children a socketpair for 'pipe'; shells give FIFOs. TTYs and files are not watched.
    if (!st.isFIFO() && !st.isSocket()) return undefined;
  } catch {
    return undefined;
  }
  const stdin = process.stdin;
  const onEnd = (): void => onEof();
  const ignore = (): void => undefined;
  stdin.on('end', onEnd);
  stdin.on('error', ignore);
  stdin.on('data', ignore); // drain whatever is written; only EOF matters
  return () => {
    stdin.off('end', onEnd);
    stdin.off('data', ignore);
    stdin.pause();
  };
}

async function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function required(env: Readonly<Record<string, string | undefined>>, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw workerError(`${name} is not set`, 'this program is an omnistage worker: start it through omnistage, which sets the OMNISTAGE_* variables');
  }
  return value;
}

function requiredInt(env: Readonly<Record<string, string | undefined>>, name: string): number {
  const text = required(env, name);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw workerError(`${name} is not an integer: ${JSON.stringify(text)}`);
  return value;
}

function workerError(message: string, hint = 'see docs/protocol.md'): OmniError {
  return new OmniError('OMNI_PROTOCOL', message, { hint });
}

/** Runs a plugin connector's method; what it throws is said to come from it. */
async function attributed<T>(call: () => T | Promise<T>, what: string): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new OmniError('OMNI_REQUEST_FAILED', `${what}: ${messageOf(err)}`, { cause: err, hint: 'the plugin that defines the connector failed; see its documentation' });
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
