import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { toOmniError, type OmniError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { HeldDeviceLocks, OmniHooks } from '../hooks/hooks.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { InitPlan, ReplicaPlan, WorkerSpec } from '../planning/types.js';
import type { ControlServer } from '../control/server.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import { controlEnv, type JsonObject } from '../control/protocol.js';
import type { BuiltinRuntime } from '../builtins/builtin-runtime.js';
import type { RunningPipeline, StartedReplica } from '../orchestrate/running-pipeline.js';
import { isPhased } from '../locks/init-locks.js';
import { serveInitWindows } from './init-windows.js';
import { runPhase, type PhaseScope } from './run-phase.js';
import { ReplicaWatch, type ReplicaDeadlines } from './replica-watch.js';
import type { ReplicaProgress } from './replica-progress.js';

/** Where a replica's output lines go. */
export type ReplicaLineSink = (replica: ReplicaPlan, stream: 'stdout' | 'stderr', line: string) => void;

/** What starting replicas of one run needs: the hooks, where to report, and the run's objects. */
export interface ReplicaDriver {
  readonly hooks: OmniHooks;
  readonly events: EventBus;
  readonly logger: Logger;
  readonly lockDir: string;
  readonly control: ControlServer;
  readonly pipeline: RunningPipeline;
  readonly onLine?: ReplicaLineSink | undefined;
  /** Heartbeat interval asked of control-protocol replicas (0: none). */
  readonly heartbeatMs?: number;
}

/** One start of one replica: the outer signal (bring-up or teardown), its deadlines, and who watches its progress. */
export interface StartContext extends ReplicaDeadlines {
  signal: AbortSignal;
  /** Told the replica's progress object once (the bring-up's pipeline timer reads it). */
  onProgress?(progress: ReplicaProgress): void;
  /** Its devices are held shared now (a phase-aware replica loading): a co-located replica may start. */
  onShared?(): void;
}

/** Engine args and metadata as they travel in `welcome` (JSON round trip drops undefined). */
function toJsonObject(value: object): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}

function runtimeOf(
  d: ReplicaDriver,
  replica: ReplicaPlan,
  watch: ReplicaWatch,
  deadline: number,
): BuiltinRuntime & { controlChannel: ReplicaChannel | undefined } {
  const logger = d.logger.child({ stage: replica.stage_id, replica: replica.replica_id });
  return {
    replica,
    runId: d.pipeline.runId,
    runDir: d.pipeline.runDir,
    lockDir: d.lockDir,
    signal: watch.signal,
    deadline,
    logger,
    events: d.events,
    progress: (step, detail) => Object.assign(watch.progress, { step, detail: detail ?? null }),
    onLine: (stream, line) => (d.onLine ? d.onLine(replica, stream, line) : logger.info({ stream }, line)),
    fail: (err) => watch.fail(err),
    controlChannel: undefined,
  };
}

/** The worker as spawned: a control-protocol worker gets the socket and its token in its env, announced to the server first. */
function announce(
  d: ReplicaDriver,
  replica: ReplicaPlan,
  phases: boolean,
): { worker: WorkerSpec; channel: ReplicaChannel | undefined } {
  if (replica.worker.attach !== 'control') return { worker: replica.worker, channel: undefined };
  const { stage_id, replica_id } = replica;
  const token = randomBytes(16).toString('hex');
  const env = controlEnv({ socketPath: d.control.socketPath, token, stage_id, replica_id, run_id: d.pipeline.runId });
  const channel = d.control.expect(token, {
    stage_id,
    replica_id,
    engine_args: toJsonObject(replica.engine_args),
    // runtime_cfg stays in the orchestrator: env and devices already reached the child.
    metadata: toJsonObject({ ...replica.metadata, runtime_cfg: null }),
    payloads: d.pipeline.payloads,
    phases,
    ...(d.heartbeatMs ? { heartbeat_ms: d.heartbeatMs } : {}),
  });
  return { worker: { ...replica.worker, env: { ...replica.worker.env, ...env } }, channel };
}

/**
 * Starts (or restarts) one replica: lock → spawn → attach, each one {@link runPhase} over its hook
 * (core's built-in taps answer last), within the replica's deadline and the outer signal. A
 * replica whose hello declares init phases holds its devices shared from then on, alone only in
 * the windows it asks for (init-windows.ts). The locks are released once attached (or on failure); a failure names stage, replica, phase, pid,
 * exit status and last lines, and is reported as `replica:failed`.
 */
export async function startReplica(d: ReplicaDriver, replica: ReplicaPlan, sc: StartContext): Promise<StartedReplica> {
  const { stage_id, replica_id } = replica;
  const watch = new ReplicaWatch(replica, sc.signal, sc);
  sc.onProgress?.(watch.progress);
  const rt = runtimeOf(d, replica, watch, sc.deadline);
  const scope: PhaseScope = { progress: watch.progress, events: d.events, signal: watch.signal };
  let locks: HeldDeviceLocks | undefined;
  let proc: ReplicaProcessHandle | undefined;
  let stopWindows: (() => Promise<void>) | undefined;
  const t0 = performance.now();
  try {
    locks = await runPhase<HeldDeviceLocks>(scope, 'lock', { hook: d.hooks.lockDevices, mode: 'bail', args: [rt] });
    // Held shared already (a worker expected to follow phases): a co-located replica may start too.
    if (isPhased(locks) && locks.shared) sc.onShared?.();
    watch.progress.phase = 'spawn';
    if (watch.expired) throw watch.timeoutError();
    if (watch.signal.aborted) throw toOmniError(watch.signal.reason, 'OMNI_CANCELLED');
    const { worker, channel } = announce(d, replica, isPhased(locks));
    rt.controlChannel = channel;
    if (channel && isPhased(locks)) stopWindows = serveInitWindows(channel, locks, rt, () => sc.onShared?.());
    proc = await runPhase<ReplicaProcessHandle>(scope, 'spawn', {
      hook: d.hooks.spawn,
      mode: 'bail',
      args: [worker, rt],
    });
    const started = d.pipeline.track(replica, proc);
    d.events.emit({ type: 'replica:spawned', stage_id, replica_id, pid: proc.pid });
    started.connection = await runPhase<ReplicaConnection>(scope, 'attach', {
      hook: d.hooks.attach,
      mode: 'bail',
      args: [proc, rt],
      process: proc,
    });
    d.events.emit({
      type: 'replica:ready',
      stage_id,
      replica_id,
      pid: proc.pid,
      duration_ms: Math.round(performance.now() - t0),
    });
    return started;
  } catch (err) {
    throw failed(d, watch, toOmniError(err), proc, rt.controlChannel);
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
  d: ReplicaDriver,
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
