import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { PipelineConfig } from '../config/types.js';
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
import type { InitPlan, ReplicaPlan, StagePlan } from '../planning/types.js';
import { applyEdgeFlows } from './edge-flows.js';
import { applyStreamingEdges } from './streaming-edges.js';
import { planReplica, type ReplicaPlanner } from './plan-replica.js';
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

/** Launch groups, the inline decision (upstream `initialize_diffusion_stage(use_inline=...)`) and admission, over every planned replica. */
function arrange(
  all: ReplicaPlan[],
  config: PipelineConfig,
  options: PlanOptions,
  visible: readonly string[],
  warnings: Diagnostic[],
): ReturnType<typeof launchGroups> {
  // One stage × one replica may run its engine inside the orchestrator, behind the same client interface; --no-inline keeps it a process.
  const only = all.length === 1 ? all[0] : undefined;
  if (only?.worker.inline_module && !options.noInline) only.worker = { ...only.worker, inline: true };
  const groups = launchGroups(all, [...visible]);
  const groupOf = launchGroupIds(groups);
  for (const rep of all) rep.group = groupOf.get(replicaKey(rep.stage_id, rep.replica_id)) ?? -1;
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
  return groups;
}

/**
 * Plans a loaded pipeline: replica layout, device mapping, per-replica metadata, engine args and
 * worker (through the hooks), lock sets, launch groups, admission and transfers. The plan carries
 * its run id (`options.runId`, a fresh one when `purpose` is `launch`); the event bus is stamped
 * with it. Deterministic for a given config, options and set of plugins; starts nothing.
 */
export async function planPipeline(
  omni: Omnistage,
  config: PipelineConfig,
  options: PlanOptions = {},
): Promise<InitPlan> {
  omni.seal();
  const runId = runIdFor(options);
  omni.events.setRunId(runId);
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
  const { defs, engines } = await validate(omni, config, ctx);
  const computed = computeReplicaLayout(config.stages, {
    devicesPerReplica: (s) => defs[s.stage_idx]!.devicesPerReplica(s),
  });
  const layout: StageLayout[] = config.stages.map((s, i) => ({
    stage_id: s.stage_id,
    num_replicas: computed.replicasPerStage[i] ?? 1,
  }));
  const planner: ReplicaPlanner = { hooks: omni.hooks, events: omni.events, ctx, layout, warnings, visible, envWasSet };

  const stagePlans: StagePlan[] = [];
  for (const [idx, stage] of config.stages.entries()) {
    const count = layout[idx]!.num_replicas;
    const split = computed.replicaDevices.get(idx);
    const replicas: ReplicaPlan[] = [];
    for (let r = 0; r < count; r++) {
      const devices = split ? (split[r] ?? null) : stage.runtime.devices;
      replicas.push(
        await planReplica(planner, { stage, def: defs[idx]!, engine: engines[idx]!, replicaId: r, count, devices }),
      );
    }
    const common = { stage_idx: idx, stage_id: stage.stage_id, stage_type: stage.stage_type, num_replicas: count };
    stagePlans.push({
      ...common,
      devices_per_replica: defs[idx]!.devicesPerReplica(stage),
      replicas,
      input_processor: await loadInputProcessor(stage, config.file),
    });
  }

  const all = stagePlans.flatMap((s) => s.replicas);
  const groups = arrange(all, config, options, visible, warnings);
  const transfers = stageTransfers(stagePlans, new Set(omni.definitions.connectorNames()));
  applyEdgeFlows(stagePlans, transfers, omni.definitions, ctx);
  applyStreamingEdges(stagePlans, transfers, config, omni.definitions);
  const locate = (stageId: number) =>
    config.stages.find((s) => s.stage_id === stageId)?.locations.at('output_connectors');
  warnings.push(...unimplementedConnectorWarnings(transfers, stagePlans, locate));
  const plan: InitPlan = {
    run_id: runId,
    platform,
    device_env: [...PLATFORMS[platform].deviceEnv],
    visible_devices: [...visible],
    topology: { source: config.topology, pipeline: config.pipeline, selected_by: config.pipeline_selected_by },
    ...(config.liveness === undefined ? {} : { liveness: { ...config.liveness } }),
    stages: stagePlans,
    groups,
    transfers,
    warnings,
  };
  omni.hooks.planned.call(plan);
  const placement = all.map(({ stage_id, replica_id, devices, physical_devices, group }) => ({
    stage_id,
    replica_id,
    devices,
    physical_devices: [...physical_devices],
    group,
  }));
  omni.events.emit({ type: 'pipeline:planned', replicas: all.length, groups: groups.length, placement });
  return plan;
}
