import { isProcessStopped } from '../launch/proc-state.js';
import type { LivenessConfig } from '../config/types.js';
import { OmniError } from '../errors.js';
import type { RunServices } from './run-services.js';
import type { StartedReplica } from './started-replica.js';
import {
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_READINESS_FAILURES,
  DEFAULT_READINESS_MS,
  READINESS_CHECK_TIMEOUT_MS,
} from './liveness-defaults.js';
import { replicaLabel } from '../error-messages.js';

/** How replicas are watched while they serve. */
export interface LivenessOptions {
  /** Heartbeat interval asked of control-protocol replicas in `welcome` (default 2000 ms; 0: none). */
  heartbeatMs?: number;
  /** Silence after which a replica that sends heartbeats is unresponsive (default 30 000 ms). */
  timeoutMs?: number;
  /** How often replicas are checked (default: a quarter of the timeout, at most 1 s). */
  checkMs?: number;
  /** Pause between readiness re-checks of replicas whose connection has them (HTTP engines; default 5000 ms). */
  readinessMs?: number;
  /** Consecutive failed re-checks that take such a replica out of rotation (default 3). */
  readinessFailures?: number;
}

/** The options a pipeline file's `runtime:` liveness settings give (seconds to ms). */
export function livenessOptionsOf(config: LivenessConfig | undefined): LivenessOptions {
  const ms = (s: number | undefined): number | undefined => (s === undefined ? undefined : Math.round(s * 1000));
  const out: LivenessOptions = {};
  const heartbeatMs = ms(config?.heartbeat_interval_s);
  const timeoutMs = ms(config?.heartbeat_timeout_s);
  const readinessMs = ms(config?.readiness_interval_s);
  if (heartbeatMs !== undefined) out.heartbeatMs = heartbeatMs;
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
  if (readinessMs !== undefined) out.readinessMs = readinessMs;
  if (config?.readiness_failures !== undefined) out.readinessFailures = config.readiness_failures;
  return out;
}

/** What liveness needs of the running pipeline. */
export interface WatchedPipeline {
  readonly replicas: readonly StartedReplica[];
  readonly stopping: boolean;
}

/** Why a replica is unresponsive, or null while it is fine. */
export function unresponsiveReason(replica: StartedReplica, timeoutMs: number, now: number): string | null {
  if (replica.connection === null || replica.stopping || replica.process.hasExited()) return null;
  // Only this host's own replicas: a remote replica's pid names a process on another host.
  if (replica.host_id === undefined && isProcessStopped(replica.process.pid))
    return 'its process is stopped (state T: SIGSTOP or a debugger)';
  const last = replica.connection.lastHeartbeat?.() ?? null;
  if (last !== null && now - last > timeoutMs)
    return `no heartbeat for ${((now - last) / 1000).toFixed(1)} s (timeout ${timeoutMs / 1000} s)`;
  return null;
}

/**
 * Takes replicas that stopped answering out of rotation:
 * - a stopped process (checked in /proc) or a replica whose heartbeats stopped for `timeoutMs`: it
 *   gets `replica:unresponsive`, leaves the rotation, and is killed at once (a frozen process cannot
 *   shut down gracefully); its exit then takes the ordinary path (the stage's restart policy);
 * - a replica whose readiness re-checks (HTTP engines) failed `readinessFailures` times in a row:
 *   `replica:unresponsive` and out of rotation, not killed (an engine busy compiling or swapping
 *   may come back); the next check it passes brings it back (`replica:responsive`).
 * Either way the requests it was serving end at once and are retried once on another replica, as
 * for a replica that died. Returns a stop.
 */
export function watchLiveness(
  services: RunServices,
  pipeline: WatchedPipeline,
  options: LivenessOptions = {},
): () => void {
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
  const stopReadiness = watchReadiness(
    services,
    pipeline,
    options.readinessMs ?? DEFAULT_READINESS_MS,
    options.readinessFailures ?? DEFAULT_READINESS_FAILURES,
  );
  return () => {
    clearInterval(timer);
    stopReadiness();
  };
}

/** Per replica being re-checked: failures in a row, whether a check is under way, when it left. */
interface ReadinessState {
  failures: number;
  busy: boolean;
  outSince: number;
  last: string;
}

function watchReadiness(
  services: RunServices,
  pipeline: WatchedPipeline,
  intervalMs: number,
  failuresToLeave: number,
): () => void {
  const states = new WeakMap<StartedReplica, ReadinessState>();
  const check = async (
    replica: StartedReplica,
    connection: { checkReady(signal: AbortSignal): Promise<boolean> },
  ): Promise<void> => {
    let state = states.get(replica);
    if (state === undefined) states.set(replica, (state = { failures: 0, busy: false, outSince: 0, last: '' }));
    if (state.busy) return; // the previous check still waits for its answer: it counts once
    state.busy = true;
    const signal = AbortSignal.timeout(Math.min(intervalMs, READINESS_CHECK_TIMEOUT_MS));
    let ok = false;
    try {
      ok = await connection.checkReady(signal);
      state.last = ok ? '' : 'it answered not ready';
    } catch (err) {
      state.last = signal.aborted
        ? `no answer within ${Math.min(intervalMs, READINESS_CHECK_TIMEOUT_MS)} ms`
        : (err as Error).message;
    } finally {
      state.busy = false;
    }
    if (replica.stopping || replica.unresponsive === true || replica.process.hasExited() || pipeline.stopping) return;
    if (ok) {
      state.failures = 0;
      if (replica.unready === true) comeBack(services, replica, Date.now() - state.outSince);
      return;
    }
    state.failures++;
    if (state.failures >= failuresToLeave && replica.unready !== true) {
      state.outSince = Date.now();
      leaveRotation(services, replica, `${state.failures} readiness checks failed in a row (last: ${state.last})`);
    }
  };
  const timer = setInterval(() => {
    if (pipeline.stopping) return clearInterval(timer);
    for (const replica of pipeline.replicas) {
      const connection = replica.connection;
      if (
        connection?.checkReady === undefined ||
        replica.stopping ||
        replica.unresponsive === true ||
        replica.process.hasExited()
      )
        continue;
      void check(replica, connection as { checkReady(signal: AbortSignal): Promise<boolean> });
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Marks a replica out of rotation and ends the requests it serves (they are retried elsewhere). */
function outOfRotation(services: RunServices, replica: StartedReplica, reason: string, what: string): void {
  const { stage_id, replica_id } = replica.plan;
  const pid = replica.process.pid;
  services.events.emit({ type: 'replica:unresponsive', stage_id, replica_id, pid, reason });
  services.logger.warn(
    { code: 'OMNI_WARN_REPLICA_UNRESPONSIVE', stage: stage_id, replica: replica_id, pid },
    `${replicaLabel(replica.plan, pid)} is unresponsive: ${reason}; ${what}`,
  );
  replica.rotation?.abort(
    new OmniError('OMNI_WORKER_UNRESPONSIVE', `${replicaLabel(replica.plan, pid)} is unresponsive: ${reason}`, {
      context: { stage_id, replica_id, pid },
      hint: 'see the replica log; liveness settings: runtime.heartbeat_timeout_s, runtime.readiness_interval_s, runtime.readiness_failures',
    }),
  );
  replica.rotation = undefined;
}

function takeOut(services: RunServices, replica: StartedReplica, reason: string): void {
  replica.unresponsive = true;
  outOfRotation(services, replica, reason, 'taking it out of rotation and killing it');
  void replica.process.stop(0).catch(() => undefined);
}

function leaveRotation(services: RunServices, replica: StartedReplica, reason: string): void {
  replica.unready = true;
  outOfRotation(services, replica, reason, 'taking it out of rotation until it answers again');
}

function comeBack(services: RunServices, replica: StartedReplica, outMs: number): void {
  const { stage_id, replica_id } = replica.plan;
  const pid = replica.process.pid;
  replica.unready = false;
  services.events.emit({ type: 'replica:responsive', stage_id, replica_id, pid, out_ms: outMs });
  services.logger.info(
    { stage: stage_id, replica: replica_id, pid },
    `${replicaLabel(replica.plan, pid)} answers its readiness check again after ${(outMs / 1000).toFixed(1)} s: back in rotation`,
  );
}
