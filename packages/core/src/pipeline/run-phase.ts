import { OmniError, toOmniError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { ReplicaPhase } from '../events/types.js';
import { BUILTIN_TAP_PREFIX } from '../hooks/plugin-errors.js';
import type { ReplicaExit, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import { whereIs, type ReplicaProgress } from './replica-progress.js';
import { describeExit, replicaLabel } from '../error-messages.js';

/** A tapable tap as the hook holds it (its `fn` already wrapped to attribute errors to the plugin). */
interface HookTap {
  readonly name: string;
  readonly type: 'sync' | 'async' | 'promise';
  // tapable types it as `Function`; it is called with the hook's arguments (plus a callback for `async`).
  readonly fn: Function; // eslint-disable-line @typescript-eslint/no-unsafe-function-type
}

/** Any tapable hook: its taps, in the order they run (by `stage`, then registration). */
export interface TappableHook {
  readonly taps: readonly HookTap[];
}

/** What one phase calls: the taps of `hook`, as a bail (first answer wins) or a waterfall (each refines a value). */
export interface PhaseCall {
  readonly hook: TappableHook | undefined;
  readonly mode: 'bail' | 'waterfall';
  /** The taps' arguments; in a waterfall, the first is the value that flows. */
  readonly args: readonly unknown[];
  /** A process to supervise: its exit fails the phase at once, with its exit status and last lines. */
  readonly process?: ReplicaProcessHandle;
  /** The host's own step once a tap answered (an agent waits for the head's mark), supervised like the taps. */
  readonly settle?: (result: unknown) => Promise<void>;
}

/** Where a phase runs: the replica's progress (updated here), its events and its abort signal. */
export interface PhaseScope {
  readonly progress: ReplicaProgress;
  readonly events: EventBus;
  /** Aborted with the error to report when the replica's deadline passes or it is cancelled. */
  readonly signal?: AbortSignal;
}

/**
 * How long a phase whose tap failed waits for its supervised process's exit status: a worker that
 * exits closes its connection first, and its exit code is the better error.
 */
const EXIT_AFTER_FAILURE_GRACE_MS = 2_000;

function callTap(tap: HookTap, args: readonly unknown[]): Promise<unknown> {
  if (tap.type === 'async') {
    return new Promise(
      (resolve, reject) =>
        void tap.fn(...args, (err: unknown, result: unknown) => (err ? reject(err) : resolve(result))),
    );
  }
  try {
    return Promise.resolve(tap.fn(...args) as unknown);
  } catch (err) {
    return Promise.reject(err);
  }
}

async function runTaps(call: PhaseCall, progress: ReplicaProgress): Promise<unknown> {
  let value = call.args[0];
  for (const tap of call.hook?.taps ?? []) {
    progress.tap = tap.name;
    const result = await callTap(tap, call.mode === 'waterfall' ? [value, ...call.args.slice(1)] : call.args);
    if (result === undefined) continue;
    if (call.mode === 'bail') return result;
    value = result;
  }
  progress.tap = null;
  return call.mode === 'bail' ? undefined : value;
}

async function runCall(call: PhaseCall, progress: ReplicaProgress): Promise<unknown> {
  const result = await runTaps(call, progress);
  if (call.settle === undefined) return result;
  // The taps are done: a failure from here on is the host's, not the plugin's whose tap answered.
  progress.tap = null;
  await call.settle(result);
  return result;
}

/** The error of a supervised process that exited while a phase waited on it, naming the plugin whose tap waited. */
function exitedDuring(progress: ReplicaProgress, proc: ReplicaProcessHandle, exit: ReplicaExit): OmniError {
  const plugin = progress.tap !== null && !progress.tap.startsWith(BUILTIN_TAP_PREFIX) ? progress.tap : null;
  const step = whereIs(progress);
  const { stage_id, replica_id } = progress.replica;
  return new OmniError(
    'OMNI_WORKER_EXITED',
    `${replicaLabel(progress.replica, proc.pid)} exited during ${step} (${describeExit(exit)})` +
      (plugin ? ` while plugin "${plugin}" was in its ${progress.phase} tap` : '') +
      (progress.detail ? ` (${progress.detail})` : ''),
    {
      context: {
        stage_id,
        replica_id,
        phase: step,
        pid: proc.pid,
        exit_code: exit.code,
        signal: exit.signal,
        last_lines: proc.lastLines().slice(-10),
        ...(plugin ? { plugin, hook: progress.phase } : {}),
      },
      hint: plugin
        ? `the engine failed while plugin "${plugin}" was attaching to it; its last output lines are shown above`
        : 'the engine failed while starting; its last output lines are shown above',
    },
  );
}

/** Waits for `work`, failing at once when the signal aborts or the supervised process exits. */
async function supervise<T>(work: Promise<T>, scope: PhaseScope, proc: ReplicaProcessHandle | undefined): Promise<T> {
  const { signal } = scope;
  let cleanup = (): void => {};
  const aborted = new Promise<never>((_, reject) => {
    if (!signal) return;
    const onAbort = (): void => reject(toOmniError(signal.reason, 'OMNI_CANCELLED'));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    cleanup = () => signal.removeEventListener('abort', onAbort);
  });
  const exited = proc
    ? proc.exited.then((exit) => {
        throw exitedDuring(scope.progress, proc, exit);
      })
    : new Promise<never>(() => {});
  // A tap that failed because its process is going away (its connection closed): name the exit.
  const settled = work.catch(async (err: unknown) => {
    if (!proc) throw err;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(err), EXIT_AFTER_FAILURE_GRACE_MS)),
    );
    try {
      return await Promise.race([exited, grace, aborted]);
    } finally {
      clearTimeout(timer);
    }
  });
  try {
    return await Promise.race([settled, exited, aborted]);
  } finally {
    cleanup();
    for (const p of [settled, exited, aborted]) p.catch(() => {});
  }
}

/**
 * Runs one phase of a replica: calls the taps of its hook in order (the built-in tap, at the last
 * stage, answers when no plugin did), emits `replica:phase` start/end with its duration, and ends
 * it at once on the replica's deadline or cancel (the signal) or when the supervised process
 * exits. Errors of plugin taps name the plugin and the hook (the hooks' interceptor); every error
 * names the stage, replica and phase (or the step the tap reported).
 */
export async function runPhase<T>(scope: PhaseScope, phase: ReplicaPhase, call: PhaseCall): Promise<T> {
  const { progress, events } = scope;
  const { stage_id, replica_id } = progress.replica;
  Object.assign(progress, { phase, tap: null, step: null, detail: null });
  const t0 = performance.now();
  events.emit({ type: 'replica:phase', stage_id, replica_id, phase, status: 'start' });
  try {
    const result = (await supervise(runCall(call, progress), scope, call.process)) as T;
    const duration_ms = Math.round((performance.now() - t0) * 1000) / 1000;
    events.emit({ type: 'replica:phase', stage_id, replica_id, phase, status: 'end', duration_ms });
    return result;
  } catch (err) {
    const e = toOmniError(err);
    e.context.stage_id ??= stage_id;
    e.context.replica_id ??= replica_id;
    e.context.phase ??= whereIs(progress);
    throw e;
  }
}
