import { OmniError } from '../errors.js';
import type { PayloadPlane } from '../connectors/payload-fetch.js';

/**
 * The omnistage control protocol: newline-delimited JSON over a Unix socket (docs/protocol.md).
 * This module is imported by the worker SDK, so it must only use node built-ins and our own
 * dependency-free modules.
 */

/** Bumped on any incompatible change; `hello` and `welcome` carry it. */
export const PROTOCOL_VERSION = 1;

/** The version of the init-phases extension (`phases` in hello/welcome, the window messages). */
export const PHASES_VERSION = 1;

/**
 * The one table of the env vars a replica gets from omnistage: who it is (run, stage, replica:
 * every replica, planned into its env) and how to dial back (control endpoint, token, TLS, host).
 */
export const CONTROL_ENV = Object.freeze({
  socket: 'OMNISTAGE_CONTROL',
  token: 'OMNISTAGE_TOKEN',
  stageId: 'OMNISTAGE_STAGE_ID',
  replicaId: 'OMNISTAGE_REPLICA_ID',
  runId: 'OMNISTAGE_RUN_ID',
  /** Mutual TLS to a head's TCP control port (docs/scale-out.md): paths of this replica's certificate, its key and the CA the head's certificate must be signed by. All three or none. */
  tlsCert: 'OMNISTAGE_TLS_CERT',
  tlsKey: 'OMNISTAGE_TLS_KEY',
  tlsCa: 'OMNISTAGE_TLS_CA',
  /** Scale-out: the address of the replica's host (an agent's `--advertise`): it dials from it and binds its ports on it. */
  hostAddress: 'OMNISTAGE_HOST_ADDRESS',
} as const);

/** JSON values as they travel on the wire. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object, as control messages carry them. */
export type JsonObject = { [key: string]: JsonValue };

// ---- worker → orchestrator --------------------------------------------------------------

/** First message of a worker: who it is, proven by the per-replica token. */
export interface HelloMessage {
  type: 'hello';
  v: number;
  token: string;
  stage_id: number;
  replica_id: number;
  pid: number;
  /**
   * The init-phases version this worker follows (optional, additive; docs/protocol.md "Init
   * phases"): it loads while holding its devices shared and asks for a window around profiling.
   */
  phases?: number;
}
/** The engine is loaded and accepts requests; `info` is engine-specific (e.g. num_gpu_blocks). */
export interface ReadyMessage {
  type: 'ready';
  info?: JsonObject;
}
export interface HeartbeatMessage {
  type: 'heartbeat';
}
/** One chunk of a request's result; `seq` counts from 0 per request, `done` marks the last. */
export interface OutputMessage {
  type: 'output';
  request_id: string;
  seq: number;
  data: JsonValue;
  done: boolean;
}
/** The request failed in the worker; no further output follows for it. */
export interface RequestErrorMessage {
  type: 'request_error';
  request_id: string;
  message: string;
}
/** Structured log line (workers may also just print to stdout/stderr). */
export interface LogMessage {
  type: 'log';
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
}
/**
 * The replica is done with a shared-memory payload it consumed (docs/protocol.md, "Payloads"): the
 * orchestrator deletes the file once every consumer acknowledged it. Additive: no version bump.
 */
export interface PayloadAckMessage {
  type: 'payload_ack';
  key: string;
}
/**
 * The request's handler has taken its streamed input up to `seq` (docs/protocol.md "Streamed
 * input"): the orchestrator may send that many more `input` messages. Additive: no version bump.
 */
export interface InputAckMessage {
  type: 'input_ack';
  request_id: string;
  seq: number;
}
/** Asks for the devices alone (docs/protocol.md "Init phases"); one window at a time. */
export interface WindowRequestMessage {
  type: 'window_request';
  window: number;
}
/** The exclusive part is done: the replica holds its devices shared again. */
export interface WindowEndMessage {
  type: 'window_end';
  window: number;
}
/** A message a replica sends the orchestrator. */
export type WorkerMessage =
  | HelloMessage
  | ReadyMessage
  | HeartbeatMessage
  | OutputMessage
  | RequestErrorMessage
  | LogMessage
  | PayloadAckMessage
  | InputAckMessage
  | WindowRequestMessage
  | WindowEndMessage;

// ---- orchestrator → worker --------------------------------------------------------------

/** Answer to a valid hello: the replica's configuration. */
export interface WelcomeMessage {
  type: 'welcome';
  v: number;
  run_id: string;
  stage_id: number;
  replica_id: number;
  engine_args: JsonObject;
  metadata: JsonObject;
  /** Where this run's shared-memory payload files live (optional, additive; see docs/protocol.md "Payloads"). */
  payload_dir?: string;
  /**
   * Payload connector classes plugins define: class name → `file:` URL of the module exporting
   * `createPayloadConnector` (optional, additive; see docs/protocol.md "Payloads").
   */
  connectors?: Record<string, string>;
  /**
   * The direct data plane between hosts (optional, additive; docs/protocol.md "Payload fetch"):
   * this replica's host and payload server, stamped as `origin` into the shm references it stores,
   * and the run's fetch token, size limit and deadline for references whose origin is another host.
   */
  payload_plane?: PayloadPlane;
  /** The init-phases version granted, echoed only to a hello that declared phases (optional, additive). */
  phases?: number;
  /**
   * Send a `heartbeat` this often (optional, additive): a replica that has sent one and then stays
   * silent past the orchestrator's timeout is taken out of rotation (docs/protocol.md "Liveness").
   */
  heartbeat_ms?: number;
}
export interface RequestMessage {
  type: 'request';
  request_id: string;
  /** The whole input; with `streamed`, its first chunk (seq 0). */
  input: JsonValue;
  params: JsonObject;
  /**
   * The input is streamed (optional, additive; docs/protocol.md "Streamed input"): more chunks
   * follow as `input` messages, then `input_end`. The worker acks what its handler took (`input_ack`).
   */
  streamed?: boolean;
  /** Most input chunks sent and not yet acked (with `streamed`). */
  input_window?: number;
  /**
   * Most `output` chunks the worker may send beyond the credits it was granted (optional,
   * additive): it waits for `credit` before sending more. Absent: no limit.
   */
  output_window?: number;
}
/** One more chunk of a streamed input; `seq` counts on from the request's `input` (seq 0). */
export interface InputMessage {
  type: 'input';
  request_id: string;
  seq: number;
  data: JsonValue;
}
/** The streamed input of a request is complete. */
export interface InputEndMessage {
  type: 'input_end';
  request_id: string;
}
/** The worker may send `n` more `output` chunks of the request (flow control, with `output_window`). */
export interface CreditMessage {
  type: 'credit';
  request_id: string;
  n: number;
}
export interface AbortMessage {
  type: 'abort';
  request_id: string;
}
/** Finish in-flight work quickly and exit 0. */
export interface ShutdownMessage {
  type: 'shutdown';
  reason?: string;
}
/** Sent before the orchestrator closes a connection it rejects. */
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}
/** The replica has its devices alone until it sends `window_end`. */
export interface WindowGrantedMessage {
  type: 'window_granted';
  window: number;
}
/** A message the orchestrator sends a replica. */
export type OrchestratorMessage =
  | WelcomeMessage
  | RequestMessage
  | InputMessage
  | InputEndMessage
  | CreditMessage
  | AbortMessage
  | ShutdownMessage
  | ErrorMessage
  | WindowGrantedMessage;

/** Any message on a control connection. */
export type ControlMessage = WorkerMessage | OrchestratorMessage;

/** The env additions that let a replica attach (given to the launcher, never put in process.env). */
export function controlEnv(params: {
  socketPath: string;
  token: string;
  stage_id: number;
  replica_id: number;
  run_id: string;
  /** The host address a remote replica dials from (scale-out agents' `--advertise`). */
  hostAddress?: string;
}): Record<string, string> {
  return {
    ...(params.hostAddress === undefined ? {} : { [CONTROL_ENV.hostAddress]: params.hostAddress }),
    [CONTROL_ENV.socket]: params.socketPath,
    [CONTROL_ENV.token]: params.token,
    [CONTROL_ENV.stageId]: String(params.stage_id),
    [CONTROL_ENV.replicaId]: String(params.replica_id),
    [CONTROL_ENV.runId]: params.run_id,
  };
}

// ---- validation ---------------------------------------------------------------------------

type Checker = (m: Record<string, unknown>) => string | null;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const str = (m: Record<string, unknown>, k: string): string | null =>
  typeof m[k] === 'string' ? null : `${k} must be a string`;
const int = (m: Record<string, unknown>, k: string): string | null => (isInt(m[k]) ? null : `${k} must be an integer`);
const obj = (m: Record<string, unknown>, k: string, optional = false): string | null =>
  (optional && m[k] === undefined) || isObj(m[k]) ? null : `${k} must be an object`;
const positive = (m: Record<string, unknown>, k: string): string | null =>
  m[k] === undefined || (isInt(m[k]) && (m[k] as number) > 0) ? null : `${k} must be a positive integer`;
const first = (...checks: (string | null)[]): string | null => checks.find((c) => c !== null) ?? null;

const WORKER_CHECKS: Record<WorkerMessage['type'], Checker> = {
  hello: (m) =>
    first(
      int(m, 'v'),
      str(m, 'token'),
      int(m, 'stage_id'),
      int(m, 'replica_id'),
      int(m, 'pid'),
      m['phases'] === undefined ? null : int(m, 'phases'),
    ),
  ready: (m) => obj(m, 'info', true),
  heartbeat: () => null,
  output: (m) =>
    first(
      str(m, 'request_id'),
      int(m, 'seq'),
      'data' in m ? null : 'data is required',
      typeof m['done'] === 'boolean' ? null : 'done must be a boolean',
    ),
  request_error: (m) => first(str(m, 'request_id'), str(m, 'message')),
  log: (m) =>
    first(
      ['debug', 'info', 'warn', 'error'].includes(m['level'] as string) ? null : 'level is not valid',
      str(m, 'message'),
    ),
  payload_ack: (m) => str(m, 'key'),
  input_ack: (m) => first(str(m, 'request_id'), int(m, 'seq')),
  window_request: (m) => int(m, 'window'),
  window_end: (m) => int(m, 'window'),
};

const ORCHESTRATOR_CHECKS: Record<OrchestratorMessage['type'], Checker> = {
  welcome: (m) =>
    first(
      int(m, 'v'),
      str(m, 'run_id'),
      int(m, 'stage_id'),
      int(m, 'replica_id'),
      obj(m, 'engine_args'),
      obj(m, 'metadata'),
      obj(m, 'connectors', true),
      isObj(m['connectors']) && !Object.values(m['connectors']).every((v) => typeof v === 'string')
        ? 'connectors must map names to module URLs'
        : null,
    ),
  request: (m) =>
    first(
      str(m, 'request_id'),
      'input' in m ? null : 'input is required',
      obj(m, 'params'),
      m['streamed'] === undefined || typeof m['streamed'] === 'boolean' ? null : 'streamed must be a boolean',
      positive(m, 'input_window'),
      positive(m, 'output_window'),
    ),
  input: (m) => first(str(m, 'request_id'), int(m, 'seq'), 'data' in m ? null : 'data is required'),
  input_end: (m) => str(m, 'request_id'),
  credit: (m) => first(str(m, 'request_id'), int(m, 'n'), positive(m, 'n')),
  abort: (m) => str(m, 'request_id'),
  shutdown: (m) => (m['reason'] === undefined ? null : str(m, 'reason')),
  error: (m) => first(str(m, 'code'), str(m, 'message')),
  window_granted: (m) => int(m, 'window'),
};

/** Parses and validates one line sent by a worker. Throws OMNI_PROTOCOL. */
export function parseWorkerMessage(line: string): WorkerMessage {
  return parseWith(line, WORKER_CHECKS, 'worker') as WorkerMessage;
}

/** Parses and validates one line sent by the orchestrator. Throws OMNI_PROTOCOL. */
export function parseOrchestratorMessage(line: string): OrchestratorMessage {
  return parseWith(line, ORCHESTRATOR_CHECKS, 'orchestrator') as OrchestratorMessage;
}

function parseWith(line: string, checks: Record<string, Checker>, from: string): ControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw protocolError(`a ${from} message is not valid JSON: ${preview(line)}`);
  }
  if (!isObj(value) || typeof value['type'] !== 'string') {
    throw protocolError(`a ${from} message has no "type": ${preview(line)}`);
  }
  const check = Object.hasOwn(checks, value['type']) ? checks[value['type']] : undefined;
  if (check === undefined) throw protocolError(`unknown ${from} message type "${value['type']}"`);
  const problem = check(value);
  if (problem !== null) throw protocolError(`invalid ${from} "${value['type']}" message: ${problem}`);
  return value as unknown as ControlMessage;
}

/** Serialises one message as a protocol line (JSON + '\n'). */
export function encodeMessage(message: ControlMessage): string {
  return `${JSON.stringify(message)}\n`;
}

export function protocolError(message: string): OmniError {
  return new OmniError('OMNI_PROTOCOL', message, {
    hint: `the replica and the orchestrator must speak control protocol v${PROTOCOL_VERSION} (see docs/protocol.md)`,
  });
}

function preview(line: string): string {
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
}
