import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OmniError, toOmniError } from '../errors.js';
import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { HeldDeviceLocks } from '../hooks/hooks.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { Omnistage } from '../omnistage.js';
import type { InitPlan, ReplicaPlan, WorkerSpec } from '../planning/types.js';
import type { ReplicaPhase } from '../events/types.js';
import { acquireDeviceLocks } from '../locks/device-locks.js';
import { describeHolder } from '../locks/holder.js';
import { launchProcess } from '../launch/launch-process.js';
import { launchInlineThread } from '../launch/inline-thread.js';
import { ensurePortFree } from '../launch/port-check.js';
import { ControlServer } from '../control/server.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import type { JsonObject } from '../control/protocol.js';
import { controlEnv } from '../control/protocol.js';
import { waitForHttpReady } from '../control/http-readiness.js';
import { ControlReplicaConnection } from './control-connection.js';
import { DEFAULT_INIT_TIMEOUT_S, DEFAULT_STAGE_INIT_TIMEOUT_S, DEFAULT_STOP_GRACE_MS } from './defaults.js';
import { newRunId } from './run-id.js';
import { RUN_DIR_PREFIX, reapStaleRuns, writeRunOwner } from './stale-runs.js';
import { payloadDir } from '../connectors/shm-store.js';
import { RunningPipeline, type StartedReplica } from './running-pipeline.js';
import { superviseRestarts } from './supervisor.js';

export interface BringUpOptions {
  /** Seconds one replica may spend in lock + spawn + attach (default 300, upstream's). */
  stageInitTimeoutS?: number;
  /** Seconds the whole pipeline may take to come up (default 600). */
  initTimeoutS?: number;
  /** Grace between SIGTERM and SIGKILL when stopping a replica (default 5000 ms). */
  stopGraceMs?: number;
  /** Use this run id (it must be the one the plan's replica env was computed with). */
  runId?: string;
  /** Cancels the bring-up (e.g. SIGINT): everything started is stopped, the promise rejects OMNI_CANCELLED. */
  signal?: AbortSignal;
  /** Where the replicas' stdout/stderr lines go (default: the omnistage logger at info). */
  onReplicaLine?(replica: ReplicaPlan, stream: 'stdout' | 'stderr', line: string): void;
}

/** What the per-replica deadline names when it expires: the step the replica was in. */
type Step = 'lock' | 'spawn' | 'hello' | 'ready';

/** Engine args and metadata as they travel in `welcome` (JSON round trip drops undefined). */
function toJsonObject(value: object): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}

function replicaLabel(r: ReplicaPlan): string {
  return `stage ${r.stage_id} replica ${r.replica_id}`;
}

/** What a replica was doing in a step, for timeout and cancel messages. */
function describeStep(step: Step): string {
  switch (step) {
    case 'lock':
      return 'waiting for its device locks';
    case 'spawn':
      return 'spawning';
    case 'hello':
      return 'attaching, no hello message yet';
    case 'ready':
      return 'attaching, no ready message yet';
  }
}

function describeExit(code: number | null, signal: string | null): string {
  return signal ? `killed by signal ${signal}` : `exit code ${code}`;
}

/**
 * How long a replica whose control connection closed during attach gets to report its exit: a
 * worker that exits closes its socket first, and its exit code is the better error.
 */
const EXIT_AFTER_CLOSE_GRACE_MS = 2_000;

/** Waits for `promise`, failing fast if the process exits or the signal aborts. */
async function untilExitOrAbort<T>(
  promise: Promise<T>,
  proc: ReplicaProcessHandle,
  signal: AbortSignal,
  onExit: (code: number | null, signal: string | null) => OmniError,
): Promise<T> {
  let cleanup = (): void => {};
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(toOmniError(signal.reason, 'OMNI_CANCELLED'));
    const onAbort = (): void => reject(toOmniError(signal.reason, 'OMNI_CANCELLED'));
    signal.addEventListener('abort', onAbort, { once: true });
    cleanup = () => signal.removeEventListener('abort', onAbort);
  });
  const exited = proc.exited.then((e) => {
    throw onExit(e.code, e.signal);
  });
  // The connection closing (a rejection of `promise`) usually means the process is exiting: wait
  // a little for its exit status so the error names the exit code or signal.
  const settled = promise.catch(async (err: unknown) => {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(err), EXIT_AFTER_CLOSE_GRACE_MS);
    });
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
    settled.catch(() => {});
    exited.catch(() => {});
    aborted.catch(() => {});
  }
}

/** Removes what orchestrators that died without teardown left in this host's temp dir and /dev/shm. */
async function reapStaleRunsOfHost(omni: Omnistage, ownRunDir: string): Promise<void> {
  for (const r of await reapStaleRuns({ except: ownRunDir })) {
    if (r.run_id === null || r.pid === null) {
      omni.logger.warn({ run_dir: r.run_dir }, `removed ${r.run_dir}: its omnistage was killed before it recorded its owner`);
      continue;
    }
    omni.logger.warn(
      { stale_run_id: r.run_id, pid: r.pid, payload_files: r.payload_files },
      `removed the leftovers of run ${r.run_id} (its omnistage, pid ${r.pid}, died without tearing down): its run directory and ${r.payload_files} payload file(s)`,
    );
    omni.events.emit({ type: 'run:reaped', stale_run_id: r.run_id, pid: r.pid, payload_files: r.payload_files });
  }
}

/**
 * Brings a plan up: launch groups start concurrently, the members of a group one after another in
 * plan order. Each replica: lock its devices → spawn → attach, within its own deadline and the
 * pipeline's. On the first failure (or cancel, or a deadline) every outstanding launch is
 * cancelled, everything started is stopped in reverse order, and the first error is thrown, naming
 * stage, replica, phase, exit status and the replica's last lines.
 */
export async function bringUp(omni: Omnistage, plan: InitPlan, options: BringUpOptions = {}): Promise<RunningPipeline> {
  const runId = options.runId ?? newRunId();
  omni.events.setRunId(runId);
  const started = Date.now();
  const stageInitMs = (options.stageInitTimeoutS ?? DEFAULT_STAGE_INIT_TIMEOUT_S) * 1000;
  const initMs = (options.initTimeoutS ?? DEFAULT_INIT_TIMEOUT_S) * 1000;
  const pipelineDeadline = started + initMs;
  const runDir = await mkdtemp(join(tmpdir(), RUN_DIR_PREFIX));
  let control: ControlServer;
  try {
    await writeRunOwner(runDir, { run_id: runId, payload_dir: payloadDir() });
    await reapStaleRunsOfHost(omni, runDir);
    control = await ControlServer.listen(join(runDir, 'control.sock'), { run_id: runId, warn: (m) => omni.logger.warn(m) });
  } catch (err) {
    await rm(runDir, { recursive: true, force: true });
    throw toOmniError(err, 'OMNI_INTERNAL');
  }
  const pipeline: RunningPipeline = new RunningPipeline(omni, plan, {
    runId,
    runDir,
    stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    closeControl: () => control.close(),
    // A restart gets a fresh init budget; it is not bound by the bring-up's pipeline deadline.
    launch: (replicaPlan) =>
      startReplica(omni, replicaPlan, pipeline, control, {
        runId,
        runDir,
        signal: pipeline.stopSignal,
        deadline: Date.now() + stageInitMs,
        onLine: options.onReplicaLine,
      }),
  });

  const abort = new AbortController();
  // Every replica launch listens on the pipeline's signal; 32 replicas is normal, not a leak.
  setMaxListeners(0, abort.signal);
  let firstError: OmniError | undefined;
  const fail = (err: OmniError): void => {
    firstError ??= err;
    if (!abort.signal.aborted) abort.abort(err);
  };
  const onCancel = (): void =>
    fail(new OmniError('OMNI_CANCELLED', 'bring-up was cancelled', { hint: 'the pipeline was stopped before it was ready (e.g. Ctrl-C)' }));
  if (options.signal?.aborted) onCancel();
  options.signal?.addEventListener('abort', onCancel, { once: true });
  // Replicas being started and the step each is in, so a pipeline timeout can say who was late.
  const inFlight = new Map<string, { replica: ReplicaPlan; step: Step }>();
  const pipelineTimer = setTimeout(() => {
    const late = [...inFlight.values()];
    const first = late[0];
    fail(
      new OmniError(
        'OMNI_INIT_TIMEOUT',
        `the pipeline did not come up within ${initMs / 1000}s (init_timeout)` +
          (late.length > 0 ? `; still starting: ${late.map((l) => `${replicaLabel(l.replica)} (${describeStep(l.step)})`).join(', ')}` : ''),
        {
          ...(first ? { context: { stage_id: first.replica.stage_id, replica_id: first.replica.replica_id, phase: first.step } } : {}),
          hint: 'raise --init-timeout, or look at which replica was still starting in the events/log above',
        },
      ),
    );
  }, initMs);

  const byKey = new Map(plan.stages.flatMap((s) => s.replicas).map((r) => [`${r.stage_id}/${r.replica_id}`, r] as const));
  await Promise.all(
    plan.groups.map(async (group) => {
      for (const [stageId, replicaId] of group.replicas) {
        if (abort.signal.aborted) return;
        const replica = byKey.get(`${stageId}/${replicaId}`)!;
        const key = `${stageId}/${replicaId}`;
        inFlight.set(key, { replica, step: 'lock' });
        try {
          await startReplica(omni, replica, pipeline, control, {
            runId,
            runDir,
            signal: abort.signal,
            deadline: Math.min(Date.now() + stageInitMs, pipelineDeadline),
            pipelineDeadline,
            initTimeoutS: initMs / 1000,
            onLine: options.onReplicaLine,
            onStep: (step) => inFlight.set(key, { replica, step }),
          });
        } catch (err) {
          fail(toOmniError(err));
          return;
        } finally {
          inFlight.delete(key);
        }
      }
    }),
  );
  clearTimeout(pipelineTimer);
  options.signal?.removeEventListener('abort', onCancel);

  if (firstError) {
    await pipeline.stop(`bring-up failed: ${firstError.code}`);
    const c = firstError.context;
    omni.events.emit({
      type: 'pipeline:failed',
      code: firstError.code,
      message: firstError.message,
      ...(c.stage_id === undefined ? {} : { stage_id: c.stage_id }),
      ...(c.replica_id === undefined ? {} : { replica_id: c.replica_id }),
      ...(c.phase === undefined ? {} : { phase: c.phase }),
    });
    throw firstError;
  }
  superviseRestarts(omni, pipeline);
  omni.attachPipeline(pipeline);
  omni.events.emit({ type: 'pipeline:ready', duration_ms: Date.now() - started });
  return pipeline;
}

interface StartContext {
  runId: string;
  runDir: string;
  signal: AbortSignal;
  deadline: number;
  /** The pipeline's init deadline, when this start is part of a bring-up (not a restart). */
  pipelineDeadline?: number;
  /** `init_timeout` in seconds, for messages. */
  initTimeoutS?: number;
  onLine: BringUpOptions['onReplicaLine'];
  /** Told each time the replica moves to another step (lock, spawn, hello, ready). */
  onStep?(step: Step): void;
}

/** Starts (or restarts) one replica. Exported for the router's restart policy. */
export async function startReplica(
  omni: Omnistage,
  replica: ReplicaPlan,
  pipeline: RunningPipeline,
  control: ControlServer,
  sc: StartContext,
): Promise<StartedReplica> {
  const { stage_id, replica_id } = replica;
  const log = omni.logger.child({ stage: stage_id, replica: replica_id });
  const replicaAbort = new AbortController();
  const state: { step: Step } = { step: 'lock' };
  const setStep = (step: Step): void => {
    state.step = step;
    sc.onStep?.(step);
  };
  let phaseName: ReplicaPhase = 'lock';
  // When the pipeline's init_timeout is the nearer deadline, expiring it is the pipeline's timeout.
  const pipelineBound = sc.pipelineDeadline !== undefined && sc.deadline >= sc.pipelineDeadline;
  const timeoutError = (): OmniError => {
    const attaching = state.step === 'hello' || state.step === 'ready';
    if (pipelineBound) {
      return new OmniError(
        'OMNI_INIT_TIMEOUT',
        `the pipeline did not come up within ${sc.initTimeoutS ?? '?'}s (init_timeout): ${replicaLabel(replica)} was still ${describeStep(state.step)}`,
        {
          context: { stage_id, replica_id, phase: state.step },
          hint: 'raise --init-timeout (the whole bring-up) or find out why this replica is slow from its last lines',
        },
      );
    }
    return new OmniError(
      attaching ? 'OMNI_ATTACH_TIMEOUT' : 'OMNI_INIT_TIMEOUT',
      `${replicaLabel(replica)} did not finish ${attaching ? `attaching (no ${state.step} message)` : state.step} within stage_init_timeout`,
      {
        context: { stage_id, replica_id, phase: state.step },
        hint: 'the engine may be slow to load (raise --stage-init-timeout) or stuck; see its last output lines',
      },
    );
  };
  const timer = setTimeout(() => {
    // The lock wait honours the deadline itself and names the device and its holder.
    if (state.step !== 'lock') replicaAbort.abort(timeoutError());
  }, Math.max(0, sc.deadline - Date.now()));
  // A cancel from outside (another replica failed, Ctrl-C, teardown) gets its own error naming this
  // replica and step; the shared reason stays untouched and is kept as the cause.
  const onPipelineAbort = (): void => {
    const reason = toOmniError(sc.signal.reason, 'OMNI_CANCELLED');
    replicaAbort.abort(
      new OmniError('OMNI_CANCELLED', `${replicaLabel(replica)} was cancelled while ${describeStep(state.step)}: ${reason.message}`, {
        cause: reason,
        context: { stage_id, replica_id, phase: state.step },
        hint: 'another replica failed, a deadline passed or the pipeline was stopped; see the first error',
      }),
    );
  };
  if (sc.signal.aborted) onPipelineAbort();
  sc.signal.addEventListener('abort', onPipelineAbort, { once: true });

  const rt: ReplicaRuntime = {
    replica,
    runId: sc.runId,
    runDir: sc.runDir,
    lockDir: omni.lockDir,
    signal: replicaAbort.signal,
    deadline: sc.deadline,
    logger: log,
    events: omni.events,
  };
  const phase = async <T>(name: ReplicaPhase, run: () => Promise<T>): Promise<T> => {
    phaseName = name;
    const t0 = performance.now();
    omni.events.emit({ type: 'replica:phase', stage_id, replica_id, phase: name, status: 'start' });
    const result = await run();
    omni.events.emit({
      type: 'replica:phase',
      stage_id,
      replica_id,
      phase: name,
      status: 'end',
      duration_ms: Math.round((performance.now() - t0) * 1000) / 1000,
    });
    return result;
  };

  let locks: HeldDeviceLocks | undefined;
  let proc: ReplicaProcessHandle | undefined;
  let channel: ReplicaChannel | undefined;
  const t0 = performance.now();
  try {
    locks = await phase('lock', async () => (await omni.hooks.lockDevices.promise(rt)) ?? (await defaultLock(omni, rt, replicaAbort)));
    setStep('spawn');
    if (Date.now() >= sc.deadline) throw timeoutError();
    if (replicaAbort.signal.aborted) throw toOmniError(replicaAbort.signal.reason, 'OMNI_CANCELLED');
    const token = randomBytes(16).toString('hex');
    const worker: WorkerSpec =
      replica.worker.attach === 'control'
        ? { ...replica.worker, env: { ...replica.worker.env, ...controlEnv({ socketPath: control.socketPath, token, stage_id, replica_id, run_id: sc.runId }) } }
        : replica.worker;
    if (worker.attach === 'control') {
      channel = control.expect(token, {
        stage_id,
        replica_id,
        engine_args: toJsonObject(replica.engine_args),
        // runtime_cfg stays in the orchestrator: env and devices already reached the child.
        metadata: toJsonObject({ ...replica.metadata, runtime_cfg: null }),
        payloads: pipeline.payloads,
      });
    }
    proc = await phase('spawn', async () => {
      const spawned = await omni.hooks.spawn.promise(worker, rt);
      if (spawned !== undefined) return spawned;
      // The default launcher starts the process here, so the port it will bind is this host's.
      if (worker.attach === 'http' && worker.port !== undefined && !worker.inline) await ensurePortFree(worker.port, { stage_id, replica_id, phase: 'spawn' });
      return defaultSpawn(worker, rt, sc.onLine);
    });
    const started = pipeline.track(replica, proc);
    omni.events.emit({ type: 'replica:spawned', stage_id, replica_id, pid: proc.pid });
    const p = proc;
    // An attach tap (e.g. HTTP readiness) is past spawn too: a deadline now names the attach step.
    setStep(worker.attach === 'http' ? 'ready' : 'hello');
    const conn = await phase(
      'attach',
      async () => (await omni.hooks.attach.promise(p, rt)) ?? (await defaultAttach(p, rt, worker, channel, setStep)),
    );
    started.connection = conn;
    omni.events.emit({ type: 'replica:ready', stage_id, replica_id, pid: proc.pid, duration_ms: Math.round(performance.now() - t0) });
    return started;
  } catch (err) {
    let e = toOmniError(err);
    if (e.code === 'OMNI_LOCK_TIMEOUT' && pipelineBound && Date.now() >= sc.deadline) {
      // The lock wait ran into the pipeline's deadline, not the replica's own.
      e = new OmniError('OMNI_INIT_TIMEOUT', `the pipeline did not come up within ${sc.initTimeoutS ?? '?'}s (init_timeout): ${e.message}`, {
        cause: e,
        context: { ...e.context },
        hint: 'raise --init-timeout, or stop whoever holds the device',
      });
    }
    e.context.stage_id ??= stage_id;
    e.context.replica_id ??= replica_id;
    e.context.phase ??= state.step === 'hello' || state.step === 'ready' ? state.step : phaseName;
    if (proc) {
      e.context.pid ??= proc.pid;
      e.context.last_lines ??= proc.lastLines().slice(-10);
    }
    omni.events.emit({ type: 'replica:failed', stage_id, replica_id, phase: phaseName, code: e.code, message: e.message });
    channel?.close();
    throw e;
  } finally {
    clearTimeout(timer);
    sc.signal.removeEventListener('abort', onPipelineAbort);
    if (locks) await locks.release().catch((err: unknown) => log.warn({ err }, 'releasing device locks failed; they go stale'));
  }
}

async function defaultLock(omni: Omnistage, rt: ReplicaRuntime, replicaAbort: AbortController): Promise<HeldDeviceLocks> {
  const { stage_id, replica_id } = rt.replica;
  let waiting = true;
  const set = await acquireDeviceLocks({
    lockDir: rt.lockDir,
    devices: rt.replica.lock_devices,
    holder: { run_id: rt.runId, stage_id, replica_id },
    signal: rt.signal,
    deadline: rt.deadline,
    onAcquired: (device) => omni.events.emit({ type: 'lock:acquired', device, stage_id, replica_id, pid: process.pid }),
    onReleased: (device) => omni.events.emit({ type: 'lock:released', device, stage_id, replica_id, pid: process.pid }),
    onWaiting: (device, holder) => {
      omni.events.emit({ type: 'lock:waiting', device, stage_id, replica_id, holder: holder === null ? null : { ...holder } });
      rt.logger.info({ device, holder }, `waiting for device ${device}, locked by ${describeHolder(holder)}`);
    },
    onCompromised: (device, err) => {
      // Only during init does the lock protect anything; a loss then fails this replica.
      if (waiting || !replicaAbort.signal.aborted) {
        err.context.stage_id = stage_id;
        err.context.replica_id = replica_id;
        err.context.device = device;
        replicaAbort.abort(err);
      }
    },
  });
  waiting = false;
  return set;
}

function defaultSpawn(worker: WorkerSpec, rt: ReplicaRuntime, onLine: BringUpOptions['onReplicaLine']): ReplicaProcessHandle {
  const { replica } = rt;
  if (worker.inline && worker.inline_module) {
    return launchInlineThread(worker.inline_module, { ...process.env, ...worker.env }, (stream, line) =>
      onLine ? onLine(replica, stream, line) : rt.logger.info({ stream }, line),
    );
  }
  const launched = launchProcess({
    command: worker.command,
    args: worker.args,
    env: { ...process.env, ...worker.env },
    ...(worker.cwd === undefined ? {} : { cwd: worker.cwd }),
    groupShim: worker.group_shim ?? false,
    onLine: (stream, line) => (onLine ? onLine(replica, stream, line) : rt.logger.info({ stream }, line)),
    errorContext: { stage_id: replica.stage_id, replica_id: replica.replica_id, phase: 'spawn' },
  });
  return {
    pid: launched.pid,
    exited: launched.exited,
    hasExited: () => launched.exitStatus() !== null,
    lastLines: () => launched.lastLines(),
    stop: (graceMs) => launched.stop(graceMs),
  };
}

async function defaultAttach(
  proc: ReplicaProcessHandle,
  rt: ReplicaRuntime,
  worker: WorkerSpec,
  channel: ReplicaChannel | undefined,
  setStep: (s: Step) => void,
): Promise<ReplicaConnection> {
  const { replica } = rt;
  const exitedDuring = (step: Step) => (code: number | null, signal: string | null) =>
    new OmniError('OMNI_WORKER_EXITED', `${replicaLabel(replica)} (pid ${proc.pid}) exited during ${step} (${describeExit(code, signal)})`, {
      context: { stage_id: replica.stage_id, replica_id: replica.replica_id, phase: step, pid: proc.pid, exit_code: code, signal, last_lines: proc.lastLines().slice(-10) },
      hint: 'the engine failed while starting; its last output lines are shown above',
    });
  if (worker.attach === 'http') {
    setStep('ready');
    if (!worker.readiness_url) {
      throw new OmniError('OMNI_INTERNAL', `${replicaLabel(replica)}: an http worker has no readiness_url`, { hint: 'a bug in the engine plugin' });
    }
    await untilExitOrAbort(waitForHttpReady(worker.readiness_url, { signal: rt.signal, intervalMs: 250 }), proc, rt.signal, exitedDuring('ready'));
    return { info: { readiness_url: worker.readiness_url }, request: () => { throw new OmniError('OMNI_REQUEST_FAILED', 'this engine is reached over HTTP, not the control protocol'); }, shutdown: async () => {}, close: () => {} };
  }
  if (!channel) throw new OmniError('OMNI_INTERNAL', 'control channel missing');
  setStep('hello');
  await untilExitOrAbort(channel.hello, proc, rt.signal, exitedDuring('hello'));
  setStep('ready');
  const ready = await untilExitOrAbort(channel.ready, proc, rt.signal, exitedDuring('ready'));
  return new ControlReplicaConnection(channel, (ready.info ?? {}) as Record<string, unknown>);
}
