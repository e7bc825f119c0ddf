import { setMaxListeners } from 'node:events';
import { OmniError, toOmniError } from '../errors.js';
import type { Omnistage } from '../omnistage.js';
import type { InitPlan, ReplicaPlan } from '../planning/types.js';
import type { ControlServer } from '../control/server.js';
import { connectorConfigOf } from '../connectors/connector-config.js';
import type { RunConnector } from '../connectors/payload-connector.js';
import { PayloadTracker } from '../connectors/payload-tracker.js';
import type { Definitions } from '../plugins/definitions.js';
import {
  DEFAULT_INIT_TIMEOUT_S,
  DEFAULT_STAGE_INIT_TIMEOUT_S,
  DEFAULT_STOP_GRACE_MS,
} from '../orchestrate/defaults.js';
import { RunningPipeline } from '../orchestrate/running-pipeline.js';
import type { RunServices } from '../orchestrate/run-services.js';
import { superviseRestarts } from '../orchestrate/supervisor.js';
import { openRun } from './run-dir.js';
import { livenessOptionsOf, watchLiveness, type LivenessOptions } from '../orchestrate/liveness.js';
import { DEFAULT_HEARTBEAT_MS } from '../orchestrate/liveness-defaults.js';
import { describeProgress, whereIs, type ReplicaProgress } from './replica-progress.js';
import { replicasByKey, startReplica } from './start-replica.js';
import { localHost, type ReplicaDriver, type ReplicaLineSink } from './local-host.js';
import type { ReplicaHost } from './replica-host.js';
import type { StartedReplica } from '../orchestrate/started-replica.js';
import { cancelled, replicaLabel } from '../error-messages.js';

/** How a bring-up runs: its deadlines, grace, cancel signal and where replica output goes. */
export interface BringUpOptions {
  /** Seconds one replica may spend in lock + spawn + attach (default 300, upstream's). */
  stageInitTimeoutS?: number;
  /** Seconds the whole pipeline may take to come up (default 600). */
  initTimeoutS?: number;
  /** Grace between SIGTERM and SIGKILL when stopping a replica (default 5000 ms). */
  stopGraceMs?: number;
  /** Cancels the bring-up (e.g. SIGINT): everything started is stopped, the promise rejects OMNI_CANCELLED. */
  signal?: AbortSignal;
  /** Where the replicas' stdout/stderr lines go (default: the omnistage logger at info). */
  onReplicaLine?: ReplicaLineSink;
  /** Heartbeats and the silence after which a serving replica is taken out of rotation. */
  liveness?: LivenessOptions;
  /** Head mode: only these replicas start here; the others are attached by agents (default: all). */
  launchHere?: (replica: ReplicaPlan) => boolean;
  /** Head mode: called with the run's control server and pipeline before any replica starts (opens the TCP port, publishes the head). */
  beforeLaunch?: (control: ControlServer, pipeline: RunningPipeline) => Promise<void>;
}

/** The plugin connector classes some stage of the plan names, with each stage's config of it. */
function pluginConnectorsOf(definitions: Definitions, plan: InitPlan): RunConnector[] {
  const byName = new Map<string, Record<number, Readonly<Record<string, unknown>>>>();
  for (const stage of plan.stages) {
    const config = connectorConfigOf(stage.template.engine_args);
    const type = config?.['type'];
    if (config === undefined || typeof type !== 'string' || definitions.connector(type) === undefined) continue;
    const configs = byName.get(type) ?? {};
    configs[stage.stage_id] = config;
    byName.set(type, configs);
  }
  return [...byName].map(([name, stageConfigs]) => ({ definition: definitions.connector(name)!, stageConfigs }));
}

/** The first failure of a bring-up wins; it aborts every launch still in flight. */
class FirstFailure {
  readonly abort = new AbortController();
  error: OmniError | undefined;

  constructor() {
    // Every replica launch listens on the pipeline's signal; 32 replicas is normal, not a leak.
    setMaxListeners(0, this.abort.signal);
  }

  fail(err: OmniError): void {
    this.error ??= err;
    if (!this.abort.signal.aborted) this.abort.abort(err);
  }
}

/** Fails the bring-up when `init_timeout` passes, naming the replicas still starting and where each was. */
function pipelineTimer(first: FirstFailure, initMs: number, inFlight: Map<string, ReplicaProgress>): NodeJS.Timeout {
  return setTimeout(() => {
    const late = [...inFlight.values()];
    const still =
      late.length > 0
        ? `; still starting: ${late.map((p) => `${replicaLabel(p.replica)} (${describeProgress(p)})`).join(', ')}`
        : '';
    const f = late[0];
    first.fail(
      new OmniError(
        'OMNI_INIT_TIMEOUT',
        `the pipeline did not come up within ${initMs / 1000}s (init_timeout)${still}`,
        {
          ...(f
            ? { context: { stage_id: f.replica.stage_id, replica_id: f.replica.replica_id, phase: whereIs(f) } }
            : {}),
          hint: 'raise --init-timeout, or look at which replica was still starting in the events/log above',
        },
      ),
    );
  }, initMs);
}

/**
 * Starts every launch group concurrently until the first failure. The members of a group start in
 * plan order, each once the one before it is ready, or holds its devices shared (a phase-aware
 * replica loading: co-located replicas then load concurrently and only their windows serialise).
 */
async function launchAll(
  d: ReplicaDriver,
  host: ReplicaHost<StartedReplica>,
  plan: InitPlan,
  first: FirstFailure,
  initMs: number,
  stageInitMs: number,
  here: (r: ReplicaPlan) => boolean,
): Promise<void> {
  const pipelineDeadline = Date.now() + initMs;
  const inFlight = new Map<string, ReplicaProgress>();
  const timer = pipelineTimer(first, initMs, inFlight);
  const byKey = replicasByKey(plan);
  const launch = async (key: string, onShared: () => void): Promise<void> => {
    try {
      await startReplica(d, host, byKey.get(key)!, {
        signal: first.abort.signal,
        deadline: Math.min(Date.now() + stageInitMs, pipelineDeadline),
        pipelineDeadline,
        initTimeoutS: initMs / 1000,
        onProgress: (p) => inFlight.set(key, p),
        onShared,
      });
    } catch (err) {
      first.fail(toOmniError(err));
    } finally {
      inFlight.delete(key);
    }
  };
  await Promise.all(
    plan.groups.map(async (group) => {
      // Head mode: stages served by agents start nothing here.
      const local = group.replicas.map(([stageId, replicaId]) => byKey.get(`${stageId}/${replicaId}`)!).filter(here);
      local.forEach((r, i) => {
        const behind = local[i - 1];
        if (behind)
          d.events.emit({
            type: 'replica:queued',
            stage_id: r.stage_id,
            replica_id: r.replica_id,
            group: group.id,
            behind: { stage_id: behind.stage_id, replica_id: behind.replica_id },
          });
      });
      const members: Promise<void>[] = [];
      for (const { stage_id, replica_id } of local) {
        if (first.abort.signal.aborted) break;
        let shared!: () => void;
        const sharedNow = new Promise<void>((resolve) => (shared = resolve));
        const member = launch(`${stage_id}/${replica_id}`, shared);
        members.push(member);
        await Promise.race([member, sharedNow]);
      }
      await Promise.all(members);
    }),
  );
  clearTimeout(timer);
}

/** The bring-up failed: stop everything started, report `pipeline:failed`, give the first error. */
async function abandon(pipeline: RunningPipeline, err: OmniError): Promise<never> {
  await pipeline.stop(`bring-up failed: ${err.code}`);
  pipeline.fail(err);
  throw err;
}

/**
 * The run id is stamped once, by the planner, on the events of the Omnistage that planned: a plan
 * of another Omnistage, or one planned before the last, would report under another run's id.
 */
function checkRunId(omni: Omnistage, plan: InitPlan): void {
  if (omni.events.runId === plan.run_id) return;
  throw new OmniError(
    'OMNI_INTERNAL',
    `the plan is for run ${plan.run_id}, but this Omnistage last planned run ${omni.events.runId || '(none)'}.`,
    { hint: 'bring a plan up with the Omnistage that planned it, before planning again' },
  );
}

/**
 * Brings a plan up under its run id: launch groups start concurrently, the members of a group one
 * after another in plan order (overlapping where they follow init phases). Each replica: lock its devices → spawn → attach, within its own
 * deadline and the pipeline's. On the first failure (or cancel, or a deadline) every outstanding
 * launch is cancelled, everything started is stopped in reverse order, and the first error is
 * thrown, naming stage, replica, phase, exit status and the replica's last lines.
 */
export async function bringUp(omni: Omnistage, plan: InitPlan, options: BringUpOptions = {}): Promise<RunningPipeline> {
  const services: RunServices = { events: omni.events, logger: omni.logger };
  checkRunId(omni, plan);
  const started = Date.now();
  const stageInitMs = (options.stageInitTimeoutS ?? DEFAULT_STAGE_INIT_TIMEOUT_S) * 1000;
  const { runDir, control } = await openRun(services, plan.run_id);
  const payloads = new PayloadTracker(plan.run_id, {
    connectors: pluginConnectorsOf(omni.definitions, plan),
    onError: (err, what) => omni.logger.warn({ code: 'OMNI_WARN_PAYLOAD_RELEASE_FAILED', err }, what),
    onEvent: (event) => omni.events.emit(event),
  });
  const pipeline: RunningPipeline = new RunningPipeline(services, plan, {
    runDir,
    payloads,
    stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    closeControl: () => control.close(),
    // A restart gets a fresh init budget; it is not bound by the bring-up's pipeline deadline.
    launch: (replica) =>
      startReplica(d, host, replica, { signal: pipeline.stopSignal, deadline: Date.now() + stageInitMs }),
  });
  // The caller's options win over the file's (tests, embedders), each key on its own.
  const liveness: LivenessOptions = { ...livenessOptionsOf(plan.liveness), ...options.liveness };
  const heartbeatMs = liveness.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const d: ReplicaDriver = {
    hooks: omni.hooks,
    events: omni.events,
    logger: omni.logger,
    lockDir: omni.lockDir,
    control,
    pipeline,
    onLine: options.onReplicaLine,
    heartbeatMs,
  };
  const host = localHost(d);

  const first = new FirstFailure();
  const onCancel = (): void =>
    first.fail(
      cancelled('bring-up', {
        hint: 'the pipeline was stopped before it was ready (e.g. Ctrl-C)',
      }),
    );
  if (options.signal?.aborted) onCancel();
  options.signal?.addEventListener('abort', onCancel, { once: true });
  try {
    await options.beforeLaunch?.(control, pipeline);
  } catch (err) {
    first.fail(toOmniError(err));
  }
  if (!first.error)
    await launchAll(
      d,
      host,
      plan,
      first,
      (options.initTimeoutS ?? DEFAULT_INIT_TIMEOUT_S) * 1000,
      stageInitMs,
      options.launchHere ?? (() => true),
    );
  options.signal?.removeEventListener('abort', onCancel);
  if (first.error) return abandon(pipeline, first.error);
  superviseRestarts(services, pipeline);
  watchLiveness(services, pipeline, liveness);
  omni.events.emit({ type: 'pipeline:ready', duration_ms: Date.now() - started });
  return pipeline;
}
