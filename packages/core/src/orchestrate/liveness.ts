import { isProcessStopped } from '../launch/proc-state.js';
import type { RunServices } from './run-services.js';
import type { StartedReplica } from './started-replica.js';

/** How replicas are watched while they serve. */
export interface LivenessOptions {
  /** Heartbeat interval asked of control-protocol replicas in `welcome` (default 2000 ms; 0: none). */
  heartbeatMs?: number;
  /** Silence after which a replica that sends heartbeats is unresponsive (default 30 000 ms). */
  timeoutMs?: number;
  /** How often replicas are checked (default: a quarter of the timeout, at most 1 s). */
  checkMs?: number;
}

export const DEFAULT_HEARTBEAT_MS = 2_000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;

/** What liveness needs of the running pipeline. */
export interface WatchedPipeline {
  readonly replicas: readonly StartedReplica[];
  readonly stopping: boolean;
}

/** Why a replica is unresponsive, or null while it is fine. */
export function unresponsiveReason(replica: StartedReplica, timeoutMs: number, now: number): string | null {
  if (replica.connection === null || replica.stopping || replica.process.hasExited()) return null;
  // Only this host's own replicas: a remote replica's pid names a process on another host.
  if (replica.host_id === undefined && isProcessStopped(replica.process.pid)) return 'its process is stopped (state T: SIGSTOP or a debugger)';
  const last = replica.connection.lastHeartbeat?.() ?? null;
  if (last !== null && now - last > timeoutMs) return `no heartbeat for ${((now - last) / 1000).toFixed(1)} s (timeout ${timeoutMs / 1000} s)`;
  return null;
}

/**
 * Takes replicas that stopped answering out of rotation: a stopped process (checked in /proc) or a
 * replica whose heartbeats stopped for `timeoutMs`. It gets `replica:unresponsive`, leaves the
 * rotation, and is killed at once (a frozen process cannot shut down gracefully); its exit then
 * takes the ordinary path — in-flight requests fail as "replica died" and are retried once on
 * another replica, and the stage's restart policy decides whether it comes back. Returns a stop.
 */
export function watchLiveness(services: RunServices, pipeline: WatchedPipeline, options: LivenessOptions = {}): () => void {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
  const checkMs = options.checkMs ?? Math.min(1_000, Math.max(50, timeoutMs / 4));
  const timer = setInterval(() => {
    if (pipeline.stopping) return clearInterval(timer);
    const now = Date.now();
    for (const replica of pipeline.replicas) {
      if (replica.unresponsive === true) continue;
      const reason = unresponsiveReason(replica, timeoutMs, now);
      if (reason !== null) takeOut(services, replica, reason);
    }
  }, checkMs);
  timer.unref();
  return () => clearInterval(timer);
}

function takeOut(services: RunServices, replica: StartedReplica, reason: string): void {
  const { stage_id, replica_id } = replica.plan;
  const pid = replica.process.pid;
  replica.unresponsive = true;
  services.events.emit({ type: 'replica:unresponsive', stage_id, replica_id, pid, reason });
  services.logger.warn({ stage: stage_id, replica: replica_id, pid }, `stage ${stage_id} replica ${replica_id} (pid ${pid}) is unresponsive: ${reason}; taking it out of rotation and killing it`);
  void replica.process.stop(0).catch(() => undefined);
}
