/** How a replica process ended: exactly one of `code` / `signal` is set (both null if unknown). */
export interface ReplicaExit {
  code: number | null;
  signal: string | null;
}

/** A started replica process, as returned by a launcher (the `spawn` hook). */
export interface ReplicaProcessHandle {
  readonly pid: number;
  /** Resolves once, when the process has exited. */
  readonly exited: Promise<ReplicaExit>;
  /** Whether it has exited already. */
  hasExited(): boolean;
  /** The last lines the replica printed (stdout and stderr interleaved), oldest first. */
  lastLines(): string[];
  /** SIGTERM to the replica's process group, then SIGKILL after `graceMs`. Idempotent. */
  stop(graceMs: number): Promise<ReplicaExit>;
}

/** A request sent to a replica. `input` is the stage's input (text, tokens, a tensor reference...). */
export interface ReplicaRequest {
  request_id: string;
  /** The whole input; with `inputStream`, its first chunk. */
  input: unknown;
  params: Record<string, unknown>;
  /**
   * The rest of a streamed input, in order (a streaming edge: docs/protocol.md "Streamed input"):
   * sent as it comes, at most the stream window ahead of what the replica took. Only for replicas
   * whose engine takes streamed input (`EngineDefinition.streamsInput`).
   */
  inputStream?: AsyncIterable<unknown>;
  /**
   * Most output chunks the replica may send before the caller reads them (flow control: a slow
   * reader holds the replica back). Absent: no limit.
   */
  outputWindow?: number;
}

/** One chunk of a replica's output stream. */
export interface ReplicaOutputChunk {
  request_id: string;
  seq: number;
  data: unknown;
  done: boolean;
}

/**
 * An attached replica: what the `attach` hook returns and the router talks to. Implemented by core
 * for the control protocol and by engine plugins for other transports (HTTP).
 */
export interface ReplicaConnection {
  /** Info the replica sent with `ready` (engine name, capabilities, ...). */
  readonly info: Record<string, unknown>;
  /** Sends a request; chunks arrive on the returned iterator until one with `done: true`. */
  request(req: ReplicaRequest, signal?: AbortSignal): AsyncIterable<ReplicaOutputChunk>;
  /** Asks the replica to stop gracefully; resolves when the request was sent (not when it exited). */
  shutdown(): Promise<void>;
  /** Releases the connection; the replica exits when it sees it close. */
  close(): void;
  /**
   * Epoch ms of the replica's last sign of life, for transports with heartbeats (null before the
   * first). Absent: the transport has no heartbeats and liveness relies on the process state.
   */
  lastHeartbeat?(): number | null;
  /**
   * Re-checks readiness (an HTTP engine: GET its health endpoint), resolving true when it answered
   * healthy before `signal` aborted. Absent: the transport has none (heartbeats cover it). Liveness
   * calls it periodically while the replica serves; enough failures in a row take it out of rotation.
   */
  checkReady?(signal: AbortSignal): Promise<boolean>;
}
