import { toOmniError, type OmniError } from '../errors.js';
import type { HeldDeviceLocks } from '../hooks/hooks.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { InitPlan, ReplicaPlan } from '../planning/types.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import type { BuiltinRuntime } from '../builtins/builtin-runtime.js';
import { isPhased } from '../locks/init-locks.js';
import { stageOf } from '../planning/stage-of.js';
import { serveInitWindows } from './init-windows.js';
import { runPhase, type PhaseScope } from './run-phase.js';
import { ReplicaWatch, type ReplicaDeadlines } from './replica-watch.js';
import type { ReplicaProgress } from './replica-progress.js';
import type { ReplicaHost, StartDriver } from './replica-host.js';

/** One start of one replica: the outer signal (bring-up or teardown), its deadlines, and who watches its progress. */
export interface StartContext extends ReplicaDeadlines {
  signal: AbortSignal;
  /** Told the replica's progress object once (the bring-up's pipeline timer reads it). */
  onProgress?(progress: ReplicaProgress): void;
  /** Its devices are held shared now (a phase-aware replica loading): a co-located replica may start. */
  onShared?(): void;
}

function runtimeOf<T>(
  d: StartDriver,
  host: ReplicaHost<T>,
  replica: ReplicaPlan,
  watch: ReplicaWatch,
  deadline: number,
): BuiltinRuntime & { controlChannel: ReplicaChannel | undefined } {
  return {
    replica,
    stage: stageOf(host.plan, replica.stage_id),
    runId: host.runId,
    runDir: host.runDir,
    lockDir: d.lockDir,
    signal: watch.signal,
    deadline,
    logger: d.logger.child({ stage: replica.stage_id, replica: replica.replica_id }),
    events: d.events,
    progress: (step, detail) => Object.assign(watch.progress, { step, detail: detail ?? null }),
    onLine: (stream, line) => host.onLine(replica, stream, line),
    fail: (err) => watch.fail(err),
    controlChannel: undefined,
    host: host as ReplicaHost<unknown>,
  };
}

/**
 * Starts (or restarts) one replica on `host`, the one sequence for every host: lock → spawn →
 * attach, each one {@link runPhase} over its hook (plugin taps first, core's built-in taps, which
 * answer through the host, last), within the replica's deadline and the outer signal. A replica
 * whose hello declares init phases holds its devices shared from then on, alone only in the
 * windows it asks for (init-windows.ts), where the host holds its channel. The locks are released
 * once attached (or on failure); a failure names stage, replica, phase, pid, exit status and last
 * lines, is reported as `replica:failed`, and leaves the process to the host.
 */
export async function startReplica<T>(
  d: StartDriver,
  host: ReplicaHost<T>,
  replica: ReplicaPlan,
  sc: StartContext,
): Promise<T> {
  const { stage_id, replica_id } = replica;
  const watch = new ReplicaWatch(replica, sc.signal, sc);
  sc.onProgress?.(watch.progress);
  const rt = runtimeOf(d, host, replica, watch, sc.deadline);
  const scope: PhaseScope = { progress: watch.progress, events: d.events, signal: watch.signal };
  let locks: HeldDeviceLocks | undefined;
  let proc: ReplicaProcessHandle | undefined;
  let started: { value: T } | undefined;
  let stopWindows: (() => Promise<void>) | undefined;
  const t0 = performance.now();
  try {
    locks = await runPhase<HeldDeviceLocks>(scope, 'lock', { hook: d.hooks.lockDevices, mode: 'bail', args: [rt] });
    const phasedLocks = isPhased(locks) ? locks : undefined;
    // Windows need the worker's channel: a host without it has the devices alone for the whole init.
    if (phasedLocks && !host.servesInitWindows)
      await phasedLocks.alone({ deadline: sc.deadline, signal: watch.signal });
    const phased = phasedLocks !== undefined && host.servesInitWindows;
    // Held shared already (a worker expected to follow phases): a co-located replica may start too.
    if (phased && phasedLocks.shared) sc.onShared?.();
    watch.progress.phase = 'spawn';
    if (watch.expired) throw watch.timeoutError();
    if (watch.signal.aborted) throw toOmniError(watch.signal.reason, 'OMNI_CANCELLED');
    const { worker, channel } = host.announce(replica, phased);
    rt.controlChannel = channel;
    if (channel && phased) stopWindows = serveInitWindows(channel, phasedLocks, rt, () => sc.onShared?.());
    proc = await runPhase<ReplicaProcessHandle>(scope, 'spawn', {
      hook: d.hooks.spawn,
      mode: 'bail',
      args: [worker, rt],
    });
    const value = host.spawned(replica, proc);
    started = { value };
    d.events.emit({ type: 'replica:spawned', stage_id, replica_id, pid: proc.pid });
    await runPhase<ReplicaConnection>(scope, 'attach', {
      hook: d.hooks.attach,
      mode: 'bail',
      args: [proc, rt],
      process: proc,
      settle: (connection) => host.attached(value, connection as ReplicaConnection, rt),
    });
    d.events.emit({
      type: 'replica:ready',
      stage_id,
      replica_id,
      pid: proc.pid,
      duration_ms: Math.round(performance.now() - t0),
    });
    return value;
  } catch (err) {
    const e = failed(d, watch, toOmniError(err), proc, rt.controlChannel);
    if (started) await host.abandon(started.value);
    throw e;
  } finally {
    watch.dispose();
    await stopWindows?.();
    if (locks)
      await locks
        .release()
        .catch((err: unknown) =>
          rt.logger.warn(
            { code: 'OMNI_WARN_LOCK_RELEASE_FAILED', err },
            'releasing device locks failed; they go stale',
          ),
        );
  }
}

/** Completes a start's error (where, pid, last lines), stops what the replica's taps still wait on, reports it. */
function failed(
  d: StartDriver,
  watch: ReplicaWatch,
  err: OmniError,
  proc: ReplicaProcessHandle | undefined,
  channel: ReplicaChannel | undefined,
): OmniError {
  const e = watch.asPipelineTimeout(err);
  const { stage_id, replica_id } = watch.progress.replica;
  e.context.stage_id ??= stage_id;
  e.context.replica_id ??= replica_id;
  e.context.phase ??= watch.progress.step ?? watch.progress.phase;
  if (proc) {
    e.context.pid ??= proc.pid;
    e.context.last_lines ??= proc.lastLines().slice(-10);
  }
  // Taps still running (a plugin's attach polling a port) see the replica's signal abort.
  watch.fail(e);
  d.events.emit({
    type: 'replica:failed',
    stage_id,
    replica_id,
    phase: watch.progress.phase,
    code: e.code,
    message: e.message,
  });
  channel?.close();
  return e;
}

/** The replicas of a plan by `stage/replica` key. */
export function replicasByKey(plan: InitPlan): Map<string, ReplicaPlan> {
  return new Map(plan.stages.flatMap((s) => s.replicas).map((r) => [`${r.stage_id}/${r.replica_id}`, r] as const));
}
