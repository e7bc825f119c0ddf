import type { Logger } from 'pino';
import { toOmniError, type OmniError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { HeldDeviceLocks, OmniHooks } from '../hooks/hooks.js';
import type { ReplicaProcessHandle } from '../hooks/replica-handles.js';
import { BUILTIN_TAP_PREFIX } from '../hooks/plugin-errors.js';
import type { OutputStream } from '../launch/launch-process.js';
import { isPhased } from '../locks/init-locks.js';
import type { ReplicaPlan } from '../planning/types.js';
import { ReplicaWatch } from '../pipeline/replica-watch.js';
import { runPhase, type PhaseScope, type TappableHook } from '../pipeline/run-phase.js';

/** What an agent's replica starts share: the hooks (device-lock taps), its events and this host's lock dir. */
export interface AgentDriver {
  readonly hooks: OmniHooks;
  readonly events: EventBus;
  readonly logger: Logger;
  /** Host-local: the agent's `--lock-dir`. */
  readonly lockDir: string;
}

/** One start of one replica on an agent. */
export interface AgentReplicaStart {
  /** This host's plan of the replica (devices, env, lock set), carrying the replica id claimed in discovery. */
  replica: ReplicaPlan;
  runId: string;
  /** Epoch ms by which lock + spawn + attach must be done (stage_init_timeout). */
  deadline: number;
  signal: AbortSignal;
  /** Starts the process (the agent's Launcher); it dials the head itself. */
  launch(): ReplicaProcessHandle;
  /** Resolves once the head took this incarnation into its pool. */
  attached(signal: AbortSignal): Promise<unknown>;
  onLine(stream: OutputStream, line: string): void;
}

/** A hook of one core tap: the agent's spawn and attach are not plugin hooks, but run as phases all the same. */
function coreTap(name: string, fn: () => Promise<unknown>): TappableHook {
  return { taps: [{ name: `${BUILTIN_TAP_PREFIX}${name}`, type: 'promise', fn }] };
}

function runtimeOf(d: AgentDriver, s: AgentReplicaStart, watch: ReplicaWatch): ReplicaRuntime {
  // The worker's own init windows need the head's channel: on an agent every replica loads alone.
  const { phases: _phases, ...worker } = s.replica.worker;
  return {
    replica: { ...s.replica, worker },
    runId: s.runId,
    runDir: '',
    lockDir: d.lockDir,
    signal: watch.signal,
    deadline: s.deadline,
    logger: d.logger.child({ stage: s.replica.stage_id, replica: s.replica.replica_id }),
    events: d.events,
    progress: (step, detail) => Object.assign(watch.progress, { step, detail: detail ?? null }),
    onLine: s.onLine,
    fail: (err) => watch.fail(err),
  };
}

/**
 * Starts one replica on an agent through the pipeline driver's phases, as a local bring-up does:
 * `lock` (the lockDevices hook: this host's per-device init locks, taken alone, waiting on and
 * naming their holder, a dead holder's lock taken over), `spawn` (the Launcher), `attach` (until the
 * head marks this incarnation attached: its ready reached the head). The locks are released once
 * attached or on failure; a failure stops the process, is reported as `replica:failed` and thrown.
 */
export async function startAgentReplica(d: AgentDriver, s: AgentReplicaStart): Promise<ReplicaProcessHandle> {
  const { stage_id, replica_id } = s.replica;
  const watch = new ReplicaWatch(s.replica, s.signal, { deadline: s.deadline });
  const rt = runtimeOf(d, s, watch);
  const scope: PhaseScope = { progress: watch.progress, events: d.events, signal: watch.signal };
  const t0 = performance.now();
  let locks: HeldDeviceLocks | undefined;
  let proc: ReplicaProcessHandle | undefined;
  try {
    locks = await runPhase<HeldDeviceLocks>(scope, 'lock', { hook: d.hooks.lockDevices, mode: 'bail', args: [rt] });
    if (isPhased(locks)) await locks.alone({ deadline: s.deadline, signal: watch.signal });
    proc = await runPhase<ReplicaProcessHandle>(scope, 'spawn', {
      hook: coreTap('launcher', async () => s.launch()),
      mode: 'bail',
      args: [],
    });
    d.events.emit({ type: 'replica:spawned', stage_id, replica_id, pid: proc.pid });
    const attaching = proc;
    await runPhase(scope, 'attach', {
      hook: coreTap('head-attach', async () => {
        rt.progress('ready', 'the head has not taken it into its pool yet');
        return (await s.attached(watch.signal)) ?? true;
      }),
      mode: 'bail',
      args: [],
      process: attaching,
    });
    d.events.emit({
      type: 'replica:ready',
      stage_id,
      replica_id,
      pid: proc.pid,
      duration_ms: Math.round(performance.now() - t0),
    });
    return proc;
  } catch (err) {
    const e: OmniError = watch.asPipelineTimeout(toOmniError(err));
    watch.fail(e);
    d.events.emit({
      type: 'replica:failed',
      stage_id,
      replica_id,
      phase: watch.progress.phase,
      code: e.code,
      message: e.message,
    });
    if (proc !== undefined) await proc.stop(5_000);
    throw e;
  } finally {
    watch.dispose();
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
