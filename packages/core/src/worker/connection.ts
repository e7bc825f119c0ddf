/**
 * The worker's attached control connection: its lifecycle (ready, shutdown, exit when the
 * orchestrator goes) and the requests routed to it. The handshake is in handshake.ts, payloads in
 * payloads.ts.
 *
 * This module is the worker SDK: worker start-up time is benchmarked, so it imports node
 * built-ins and our dependency-free protocol modules only.
 */
import { isMainThread } from 'node:worker_threads';
import { fstatSync } from 'node:fs';
import type { Socket } from 'node:net';
import {
  encodeMessage,
  parseOrchestratorMessage,
  type JsonObject,
  type LogMessage,
  type WelcomeMessage,
  type WorkerMessage,
} from '../control/protocol.js';
import type { OutputConnector } from '../connectors/connector-config.js';
import type { PayloadMeta, PayloadRef } from '../connectors/payload-ref.js';
import { dialOrchestrator, type SocketLines } from './handshake.js';
import { WorkerPayloads } from './payloads.js';
import { planeOf } from '../connectors/payload-fetch.js';
import { InputChunks } from './input-chunks.js';
import { OutputWindow } from './output-window.js';
import type {
  ConnectOptions,
  RequestHandler,
  RequestStream,
  ShutdownHandler,
  WorkerConnection,
  WorkerRequest,
  WorkerWelcome,
} from './types.js';
import { messageOf, workerError } from './worker-error.js';

export type {
  ConnectOptions,
  RequestHandler,
  RequestStream,
  ShutdownHandler,
  WorkerConnection,
  WorkerRequest,
  WorkerWelcome,
} from './types.js';

/**
 * Dials the orchestrator named in the environment (OMNISTAGE_CONTROL, OMNISTAGE_TOKEN,
 * OMNISTAGE_STAGE_ID, OMNISTAGE_REPLICA_ID, OMNISTAGE_RUN_ID), says hello and resolves with the
 * welcome. From then on the worker process exits (code 0) when the connection closes, when the
 * orchestrator sends `shutdown` (after the shutdown handlers, bounded) or when a piped stdin
 * reaches EOF, so a replica never outlives its orchestrator.
 */
export async function connectToOrchestrator(options: ConnectOptions = {}): Promise<WorkerConnection> {
  const { socket, lines, welcome } = await dialOrchestrator(
    options.env ?? process.env,
    options.handshakeTimeoutMs ?? 30_000,
    options.phases === true,
  );
  return new Connection(socket, lines, welcome, options);
}

class Connection implements WorkerConnection {
  readonly welcome: WorkerWelcome;
  readonly closed: Promise<void>;
  readonly #socket: Socket;
  readonly #options: ConnectOptions;
  readonly #inflight = new Map<string, InflightRequest>();
  readonly #shutdownHandlers: ShutdownHandler[] = [];
  readonly #queued: Served[] = [];
  #handler: RequestHandler | null = null;
  #readySent = false;
  #terminating: Promise<void> | undefined;
  #resolveClosed!: () => void;
  #heartbeat: NodeJS.Timeout | undefined;
  #stopStdin: (() => void) | undefined;
  readonly #payloads: WorkerPayloads;
  #windows = 0;
  #window: { id: number; granted: () => void; refused: (err: Error) => void } | null = null;

  constructor(socket: Socket, lines: SocketLines, welcome: WelcomeMessage, options: ConnectOptions) {
    this.#socket = socket;
    this.#options = options;
    this.welcome = {
      run_id: welcome.run_id,
      stage_id: welcome.stage_id,
      replica_id: welcome.replica_id,
      engine_args: welcome.engine_args,
      metadata: welcome.metadata,
      ...(typeof welcome.payload_dir === 'string' && welcome.payload_dir !== ''
        ? { payload_dir: welcome.payload_dir }
        : {}),
      ...(welcome.connectors === undefined ? {} : { connectors: { ...welcome.connectors } }),
      ...(typeof welcome.phases === 'number' ? { phases: welcome.phases } : {}),
      ...(planeOf(welcome.payload_plane) === undefined ? {} : { payload_plane: welcome.payload_plane! }),
    };
    this.#payloads = new WorkerPayloads(
      this.welcome,
      (key) => this.#send({ type: 'payload_ack', key }),
      options.env ?? process.env,
    );
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    socket.on('error', () => undefined); // a reset is handled as a close
    socket.once('close', () => void this.#terminate('the control connection closed'));
    lines.setSink({ line: (line) => this.#onLine(line), error: (err) => this.#fatal(err) });
    const beat = options.heartbeatMs ?? (typeof welcome.heartbeat_ms === 'number' ? welcome.heartbeat_ms : 0);
    if (beat > 0) {
      // One at once: from its first heartbeat on the orchestrator holds this replica to the interval.
      this.#send({ type: 'heartbeat' });
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
    for (const served of this.#queued.splice(0)) this.#dispatch(served);
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

  get outputConnector(): OutputConnector {
    return this.#payloads.outputConnector;
  }

  putPayload(bytes: Uint8Array, meta?: PayloadMeta): Promise<PayloadRef> {
    return this.#payloads.put(bytes, meta);
  }

  getPayload(ref: PayloadRef, into?: Uint8Array): Promise<Buffer> {
    return this.#payloads.get(ref, into);
  }

  ackPayload(ref: PayloadRef | string): void {
    this.#payloads.ack(ref);
  }

  async exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    // Not granted: the orchestrator holds the devices alone for the whole init already.
    if (this.welcome.phases === undefined) return fn();
    if (this.#readySent) throw workerError('exclusive() is for init: it was called after ready()');
    if (this.#window !== null)
      throw workerError(`exclusive() while window ${this.#window.id} is open: one window at a time`);
    const id = ++this.#windows;
    let granted = false;
    try {
      await new Promise<void>((resolve, reject) => {
        this.#window = { id, granted: resolve, refused: reject };
        if (!this.#send({ type: 'window_request', window: id }))
          reject(workerError('the control connection is closed'));
      });
      granted = true;
      return await fn();
    } finally {
      this.#window = null;
      if (granted) this.#send({ type: 'window_end', window: id });
    }
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
        const id = message.request_id;
        const streamed = message.streamed === true;
        const inputs = new InputChunks(
          message.input,
          streamed ? (seq) => this.#send({ type: 'input_ack', request_id: id, seq }) : null,
          message.input_window ?? 1,
        );
        const request: WorkerRequest = {
          request_id: id,
          input: message.input,
          params: message.params,
          streamed,
          inputs,
        };
        const served = { request, inputs, window: new OutputWindow((m) => this.#send(m), message.output_window) };
        if (this.#handler === null) this.#queued.push(served);
        else this.#dispatch(served);
        break;
      }
      case 'input':
        this.#inflight.get(message.request_id)?.inputs.push(message.data);
        break;
      case 'input_end':
        this.#inflight.get(message.request_id)?.inputs.end();
        break;
      case 'credit':
        this.#inflight.get(message.request_id)?.window.grant(message.n);
        break;
      case 'abort':
        this.#inflight.get(message.request_id)?.abort(new Error('aborted by the orchestrator'));
        this.#inflight.delete(message.request_id);
        break;
      case 'shutdown':
        void this.#terminate(message.reason ?? 'shutdown requested by the orchestrator');
        break;
      case 'window_granted':
        if (this.#window?.id === message.window) this.#window.granted();
        break;
      case 'error':
        this.#window?.refused(
          workerError(`the orchestrator refused the init window: ${message.code}: ${message.message}`),
        );
        process.stderr.write(`omnistage worker: orchestrator error ${message.code}: ${message.message}\n`);
        break;
      case 'welcome':
        this.#fatal(new Error('unexpected second welcome'));
        break;
    }
  }

  #dispatch(served: Served): void {
    const { request, window } = served;
    const id = request.request_id;
    if (this.#inflight.has(id)) {
      this.#send({ type: 'request_error', request_id: id, message: `request ${id} is already in flight` });
      return;
    }
    const controller = new AbortController();
    const inflight = new InflightRequest(served, controller);
    this.#inflight.set(id, inflight);
    let seq = 0;
    let finished = false;
    // Once aborted the orchestrator has forgotten the request: send nothing more for it.
    const open = (): boolean => !finished && !controller.signal.aborted;
    const forget = (): void => {
      if (this.#inflight.get(id) === inflight) this.#inflight.delete(id);
    };
    const finish = (): void => {
      finished = true;
      forget();
    };
    const stream: RequestStream = {
      signal: controller.signal,
      write: (data) => {
        if (!open()) return false;
        window.chunk({ type: 'output', request_id: id, seq: seq++, data, done: false });
        return true;
      },
      end: (data = null) => {
        if (!open()) return;
        finished = true;
        // Outputs still held for credit go first; the request is known until its end went out.
        window.last({ type: 'output', request_id: id, seq: seq++, data, done: true }, forget);
      },
      error: (message) => {
        if (!open()) return;
        window.close();
        this.#send({ type: 'request_error', request_id: id, message });
        finish();
      },
      drained: () => (open() ? window.drained() : Promise.resolve()),
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
        this.#window?.refused(workerError(`no init window: ${reason}`));
        for (const inflight of this.#inflight.values()) inflight.abort(new Error(reason));
        this.#inflight.clear();
        const handlers = Promise.allSettled([
          ...this.#shutdownHandlers.map(async (fn) => fn(reason)),
          ...this.#payloads.close(),
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

/** A request as it arrived: what its handler sees, its input chunks and its output window. */
interface Served {
  request: WorkerRequest;
  inputs: InputChunks;
  window: OutputWindow;
}

/** A request being served: its input, its output window and its abort. */
class InflightRequest {
  readonly inputs: InputChunks;
  readonly window: OutputWindow;
  readonly #controller: AbortController;

  constructor(served: Served, controller: AbortController) {
    this.inputs = served.inputs;
    this.window = served.window;
    this.#controller = controller;
  }

  abort(reason: Error): void {
    this.#controller.abort(reason);
    this.inputs.fail(reason);
    this.window.close();
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
