import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { PipelineConfig, StageConfig } from '../config/types.js';
import type { PlanContext, PlanOptions, StageLayout } from '../hooks/contexts.js';
import type { Omnistage } from '../omnistage.js';
import { checkAdmission } from '../planning/admission.js';
import { checkEngineArgs } from '../planning/engine-args-check.js';
import { unimplementedConnectorWarnings } from '../planning/connector-support.js';
import { stageTransfers } from '../planning/transfers.js';
import { launchGroupIds, launchGroups, replicaKey } from '../planning/launch-groups.js';
import { PLATFORMS, resolveVisibleDevices } from '../planning/platform.js';
import { computeReplicaLayout } from '../planning/replica-layout.js';
import { loadInputProcessor } from '../orchestrate/input-processor.js';
import { newRunId } from '../orchestrate/run-id.js';
import { deepFreeze } from '../planning/deep-freeze.js';
import type { InitPlan, InputProcessor, LaunchGroup, ReplicaPlan, StagePlan } from '../planning/types.js';
import type { StageTypeDefinition } from '../plugins/definition-types.js';
import { applyEdgeFlows } from './edge-flows.js';
import { streamingEdges } from './streaming-edges.js';
import { planReplica, stageForReplica, type ReplicaPlanner } from './plan-replica.js';
import { resolveEngine, resolveStageTypes } from './plan-stages.js';

/** Run id used in replica env when a plan is only printed, never started. */
export const PLAN_ONLY_RUN_ID = 'plan-only';

/** The run a plan is for: the caller's, a fresh one for a launch, or the placeholder of a printed plan. */
function runIdFor(options: PlanOptions): string {
  return options.runId ?? (options.purpose === 'launch' ? newRunId() : PLAN_ONLY_RUN_ID);
}

/**
 * Validates every stage with its stage type's and engine's rules and its engine-arg keys against
 * what its engine takes, then the `validateConfig` taps; returns each stage's engine.
 */
async function validate(
  omni: Omnistage,
  config: PipelineConfig,
  ctx: PlanContext,
): Promise<{ defs: ReturnType<typeof resolveStageTypes>; engines: string[] }> {
  const defs = resolveStageTypes(omni.definitions, config);
  const engines = config.stages.map((stage, i) => resolveEngine(omni.definitions, stage, defs[i]!, ctx.options));
  const sharedKeys = omni.definitions.sharedEngineArgKeys();
  const warnedAt = new Set(config.warnings.map((w) => `${w.file}:${w.line}:${w.col}`));
  config.stages.forEach((stage, i) => {
    const engine = omni.definitions.engine(stage.stage_type, engines[i]!)!;
    for (const w of checkEngineArgs(stage, {
      engine: engine.name,
      declaration: engine.engineArgs,
      sharedKeys,
      warnedAt,
    }))
      ctx.warn(w);
    defs[i]!.validateStage?.(stage, ctx);
    engine.validateStage?.(stage, ctx);
  });
  await omni.hooks.validateConfig.promise(config, ctx);
  return { defs, engines };
}

/** What placing the planned replicas decided: each one's launch group and whether it runs inline. */
interface Placement {
  readonly groups: LaunchGroup[];
  /** The replica as it is placed (group set; the inline flag on its worker). */
  place(replica: ReplicaPlan): ReplicaPlan;
}

/** Launch groups, the inline decision (upstream `initialize_diffusion_stage(use_inline=...)`) and admission, over every planned replica. */
function arrange(
  all: readonly ReplicaPlan[],
  config: PipelineConfig,
  options: PlanOptions,
  visible: readonly string[],
  warnings: Diagnostic[],
): Placement {
  // One stage × one replica may run its engine inside the orchestrator, behind the same client interface; --no-inline keeps it a process.
  const inline = all.length === 1 && all.every((r) => r.worker.inline_module) && !options.noInline;
  const groups = launchGroups(all, [...visible]);
  const groupOf = launchGroupIds(groups);
  const here = options.hostStages;
  const admitted = here === undefined ? all : all.filter((r) => here.includes(r.stage_id));
  warnings.push(
    ...checkAdmission(admitted, {
      reserve: options.memoryReserve ?? 0,
      allowOvercommit: options.allowOvercommit ?? false,
      visible: [...visible],
      locate: (stageId) =>
        config.stages.find((s) => s.stage_id === stageId)?.locations.at('engine_args.gpu_memory_utilization'),
    }),
  );
  return {
    groups,
    place: (r) => ({
      ...r,
      group: groupOf.get(replicaKey(r.stage_id, r.replica_id)) ?? -1,
      ...(inline ? { worker: { ...r.worker, inline: true } } : {}),
    }),
  };
}

/** One stage, before its replicas are placed: its config, engine, template replica and replicas. */
type PlannedStage = Omit<StagePlan, 'input_processor'> & { input_processor: InputProcessor | null };

/**
 * Plans one stage: its template (replica 0, planned even when the stage runs none here) and its
 * replicas, each through {@link planReplica}; then imports its input processor.
 */
async function planStage(
  planner: ReplicaPlanner,
  config: PipelineConfig,
  stage: StageConfig,
  slot: { def: StageTypeDefinition; engine: string; count: number; split: (string | null)[] | undefined },
): Promise<PlannedStage> {
  const { def, engine, count, split } = slot;
  const plan = (replicaId: number): Promise<ReplicaPlan> =>
    planReplica(planner, {
      stage,
      def,
      engine,
      replicaId,
      count,
      devices: split ? (split[replicaId] ?? null) : stage.runtime.devices,
    });
  const template = await plan(0);
  const replicas = count === 0 ? [] : [template];
  for (let r = 1; r < count; r++) replicas.push(await plan(r));
  return {
    stage_idx: stage.stage_idx,
    stage_id: stage.stage_id,
    stage_type: stage.stage_type,
    stage: stageForReplica(stage, stage.runtime.devices),
    engine,
    template,
    num_replicas: count,
    devices_per_replica: def.devicesPerReplica(stage),
    replicas,
    input_processor: await loadInputProcessor(stage, config.file),
  };
}

/** The plan context of one plan, and the warnings its hooks and steps add to. */
function planContext(
  omni: Omnistage,
  config: PipelineConfig,
  options: PlanOptions,
  runId: string,
): { ctx: PlanContext; visible: string[]; envWasSet: boolean; warnings: Diagnostic[] } {
  const platform = options.platform ?? 'cuda';
  const { visible, envWasSet } = resolveVisibleDevices(
    platform,
    options.env ?? process.env,
    options.detectedDeviceCount,
  );
  const warnings: Diagnostic[] = [...config.warnings];
  const ctx: PlanContext = {
    config,
    platform,
    visibleDevices: visible,
    options,
    runId,
    model: options.model ?? config.model,
    logger: omni.logger,
    warn: (d) => warnings.push(typeof d === 'string' ? diagnostic('OMNI_WARN_PLUGIN', d) : d),
  };
  return { ctx, visible, envWasSet, warnings };
}

/** Every stage planned, in stage order (the layout first: plugins read every stage's replica count). */
async function planStages(
  omni: Omnistage,
  config: PipelineConfig,
  planning: ReturnType<typeof planContext>,
): Promise<PlannedStage[]> {
  const { ctx, visible, envWasSet, warnings } = planning;
  const { defs, engines } = await validate(omni, config, ctx);
  const computed = computeReplicaLayout(config.stages, {
    devicesPerReplica: (s) => defs[s.stage_idx]!.devicesPerReplica(s),
    allowZero: ctx.options.allowZeroReplicas ?? false,
  });
  const layout: StageLayout[] = config.stages.map((s, i) => ({
    stage_id: s.stage_id,
    num_replicas: computed.replicasPerStage[i] ?? 1,
  }));
  const planner: ReplicaPlanner = { hooks: omni.hooks, events: omni.events, ctx, layout, warnings, visible, envWasSet };
  const stages: PlannedStage[] = [];
  for (const [idx, stage] of config.stages.entries()) {
    const slot = { def: defs[idx]!, engine: engines[idx]!, count: layout[idx]!.num_replicas };
    stages.push(await planStage(planner, config, stage, { ...slot, split: computed.replicaDevices.get(idx) }));
  }
  return stages;
}

/**
 * Plans a loaded pipeline: replica layout, device mapping, per-replica metadata, engine args and
 * worker (through the hooks), lock sets, launch groups, admission and transfers. The plan carries
 * its run id (`options.runId`, a fresh one when `purpose` is `launch`); the event bus is stamped
 * with it here, the only place (the bring-up checks the plan's is the stamped one). Deterministic for a given config, options and set of plugins; starts nothing. The plan
 * is frozen before the `planned` taps see it.
 */
export async function planPipeline(
  omni: Omnistage,
  config: PipelineConfig,
  options: PlanOptions = {},
): Promise<InitPlan> {
  omni.seal();
  const runId = runIdFor(options);
  omni.events.setRunId(runId);
  const planning = planContext(omni, config, options, runId);
  const { ctx, visible, warnings } = planning;
  const planned = await planStages(omni, config, planning);
  const placement = arrange(
    planned.flatMap((s) => s.replicas),
    config,
    options,
    visible,
    warnings,
  );
  const placed: PlannedStage[] = planned.map((s) => ({
    ...s,
    template: s.num_replicas === 0 ? s.template : placement.place(s.template),
    replicas: s.replicas.map((r) => placement.place(r)),
  }));
  const flows = applyEdgeFlows(
    placed,
    stageTransfers(placed, new Set(omni.definitions.connectorNames())),
    omni.definitions,
    ctx,
  );
  const { transfers, streamed } = streamingEdges(placed, flows.transfers, config, omni.definitions);
  const stages: StagePlan[] = placed.map((s) => {
    const streamedInput = streamed.get(s.stage_id);
    return {
      ...s,
      input_processor: s.input_processor ?? flows.inputProcessors.get(s.stage_id) ?? null,
      ...(streamedInput === undefined ? {} : { streamed_input: streamedInput }),
    };
  });
  const locate = (stageId: number) =>
    config.stages.find((s) => s.stage_id === stageId)?.locations.at('output_connectors');
  warnings.push(...unimplementedConnectorWarnings(transfers, stages, locate));
  const plan: InitPlan = deepFreeze({
    run_id: runId,
    platform: ctx.platform,
    device_env: [...PLATFORMS[ctx.platform].deviceEnv],
    visible_devices: [...visible],
    topology: { source: config.topology, pipeline: config.pipeline, selected_by: config.pipeline_selected_by },
    ...(config.liveness === undefined ? {} : { liveness: { ...config.liveness } }),
    stages,
    groups: placement.groups,
    transfers,
    warnings,
  });
  omni.hooks.planned.call(plan);
  emitPlanned(omni, plan);
  return plan;
}

/** `pipeline:planned`: where every replica was placed. */
function emitPlanned(omni: Omnistage, plan: InitPlan): void {
  const all = plan.stages.flatMap((s) => s.replicas);
  const placement = all.map(({ stage_id, replica_id, devices, physical_devices, group }) => ({
    stage_id,
    replica_id,
    devices,
    physical_devices: [...physical_devices],
    group,
  }));
  omni.events.emit({ type: 'pipeline:planned', replicas: all.length, groups: plan.groups.length, placement });
}
