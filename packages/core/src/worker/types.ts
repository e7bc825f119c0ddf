/**
 * The worker SDK's public types: what a replica sees of its control connection.
 *
 * Imported by the worker SDK: types only.
 */
import type { JsonObject, JsonValue, LogMessage, RequestMessage, WelcomeMessage } from '../control/protocol.js';
import type { OutputConnector } from '../connectors/connector-config.js';
import type { PayloadMeta, PayloadRef } from '../connectors/payload-ref.js';

/** The replica's configuration, as sent by the orchestrator in `welcome`. */
export type WorkerWelcome = Omit<WelcomeMessage, 'type' | 'v'>;

/** One request routed to this replica. */
export interface WorkerRequest extends Pick<RequestMessage, 'request_id' | 'params'> {
  /** The whole input; for a streamed input, its first chunk. */
  readonly input: RequestMessage['input'];
  /** True when the input arrives in chunks (a streaming edge, docs/protocol.md "Streamed input"). */
  readonly streamed: boolean;
  /**
   * The input chunk by chunk, in order, ending with the input: the one `input` of an ordinary
   * request, or every chunk of a streamed one as it arrives. Iterate it once; taking a chunk tells
   * the orchestrator there is room for more (flow control). Throws when the request is aborted.
   */
  readonly inputs: AsyncIterable<JsonValue>;
}

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
  /**
   * Resolves when the orchestrator has room for more of this request's output (flow control: a
   * slow consumer downstream holds its producer back). Writes never block; a handler that awaits
   * this between writes keeps no more than the request's window in flight.
   */
  drained(): Promise<void>;
}

/** Handles one request: writes its results to `stream` (a throw or rejection fails the request). */
export type RequestHandler = (request: WorkerRequest, stream: RequestStream) => void | Promise<void>;
/** Runs before the worker exits, with the reason. */
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
   * `shm_threshold_bytes`, shared memory above), a class a plugin defines (`plugin: true`: every
   * payload goes to its module's `put`), or the inline connector.
   */
  readonly outputConnector: OutputConnector;
  /**
   * Stores an output payload (a tensor, an image...) and resolves with the reference to put in the
   * output data: inline (base64) at or below the threshold, else written once to shared memory (a
   * segment of this replica's pool, or a file of its own) that the consumers read by key, or handed
   * to the plugin class the stage sends over. `bytes` may be reused once this settles.
   */
  putPayload(bytes: Uint8Array, meta?: PayloadMeta): Promise<PayloadRef>;
  /**
   * The bytes of a payload this replica received (inline: decoded; shm: mapped without a copy where
   * the native mapper is built; a plugin class: its module's `get`). With `into` (at least
   * `ref.size` bytes), the payload is read into that buffer (a staging buffer the engine reuses)
   * and the result is a view of it. A mapped Buffer stays valid as long as it is referenced, after
   * the ack too: a pool segment it maps is not reused before it is garbage-collected.
   */
  getPayload(ref: PayloadRef, into?: Uint8Array): Promise<Buffer>;
  /**
   * Tells the orchestrator this replica is done with a payload it received (`payload_ack`), so its
   * bytes can be freed once every consumer is done. No-op for inline payloads. Call it after use.
   */
  ackPayload(ref: PayloadRef | string): void;
  /**
   * Runs `fn` with this replica's devices alone (docs/protocol.md "Init phases"): around the part of
   * init that must not see a neighbour loading, e.g. `await conn.exclusive(async () => profile())`.
   * Needs `phases: true` when connecting; outside the window the devices are held shared, so
   * co-located replicas load concurrently. When the orchestrator did not grant phases (an older
   * one), the whole init is already exclusive and `fn` just runs. One window at a time, before
   * `ready()`; rejects if the orchestrator refuses or the connection ends while waiting.
   */
  exclusive<T>(fn: () => T | Promise<T>): Promise<T>;
}

/** Options of `connectToOrchestrator` and `runWorker`. */
export interface ConnectOptions {
  /** Where to read OMNISTAGE_* from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Exit the process with code 0 once the connection ends (default true). */
  exitProcess?: boolean;
  /** Upper bound for the shutdown handlers (default 5000 ms). */
  shutdownTimeoutMs?: number;
  /** Treat EOF on a piped stdin as "orchestrator gone" (default true; ignored when stdin is not a pipe). */
  watchStdin?: boolean;
  /** Send a heartbeat every this many ms (default: what the orchestrator asks in `welcome`, else off). */
  heartbeatMs?: number;
  /** Give up when no welcome arrives within this time (default 30000 ms). */
  handshakeTimeoutMs?: number;
  /**
   * Declare init phases in hello (default false): this worker loads with its devices shared and
   * calls {@link WorkerConnection.exclusive} around what must run alone. Without it the whole init
   * has the devices alone.
   */
  phases?: boolean;
}
