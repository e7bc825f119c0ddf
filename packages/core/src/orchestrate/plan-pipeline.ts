import type { Diagnostic } from '../diagnostics.js';
import { OmniError } from '../errors.js';
import type { EngineArgs, PipelineConfig, StageConfig } from '../config/types.js';
import type { PlanContext, PlanOptions, ReplicaContext } from '../hooks/contexts.js';
import type { Omnistage } from '../omnistage.js';
import { checkAdmission } from '../planning/admission.js';
import { unimplementedConnectorWarnings } from '../planning/connector-support.js';
import { stageTransfers } from '../planning/transfers.js';
import { mapLogicalDevices } from '../planning/device-mapping.js';
import { launchGroupIds, launchGroups, replicaKey } from '../planning/launch-groups.js';
import { lockDeviceCount, selectLockDevices } from '../planning/lock-devices.js';
import { PLATFORMS, resolveVisibleDevices } from '../planning/platform.js';
import { computeReplicaLayout } from '../planning/replica-layout.js';
import { stageRuntimeEnv } from '../planning/runtime-env.js';
import { loadInputProcessor } from './input-processor.js';
import { extractStageMetadata } from '../planning/stage-metadata.js';
import type { InitPlan, ReplicaPlan, StagePlan } from '../planning/types.js';
import type { ReplicaPhase } from '../events/types.js';
import type { StageTypeDefinition } from '../plugin.js';

/** Run id used in replica env when a plan is only printed, never started. */
export const PLAN_ONLY_RUN_ID = 'plan-only';

/** A stage copy for one replica; engine args are copied so no hook can change the loaded config. */
function stageForReplica(stage: StageConfig, devices: string | null): StageConfig {
  return {
    ...stage,
    engine_args: structuredClone(stage.engine_args),
    runtime: { ...stage.runtime, env: { ...stage.runtime.env }, devices },
  };
}

function resolveStageTypes(omni: Omnistage, config: PipelineConfig): StageTypeDefinition[] {
  return config.stages.map((stage) => {
    const def = omni.stageType(stage.stage_type);
    if (!def) {
      const known = omni.stageTypeNames();
      throw new OmniError(
        'OMNI_STAGE_TYPE_UNKNOWN',
        `stage ${stage.stage_id} has stage_type "${stage.stage_type}", which no loaded plugin handles (known: ${known.map((k) => `"${k}"`).join(', ') || 'none'})`,
        {
          location: stage.locations.at('stage_type'),
          context: { stage_id: stage.stage_id },
          hint: `use one of ${known.join(', ')}, or load the plugin that defines "${stage.stage_type}" (plugins: in the file, or --plugin)`,
        },
      );
    }
    return def;
  });
}

function resolveEngine(omni: Omnistage, stage: StageConfig, def: StageTypeDefinition, options: PlanOptions): string {
  const engine = options.engine ?? stage.engine ?? def.defaultEngine;
  if (!omni.engine(stage.stage_type, engine)) {
    const known = omni.engineNames(stage.stage_type);
    const fromCli = options.engine !== undefined;
    throw new OmniError(
      'OMNI_ENGINE_UNKNOWN',
      `stage ${stage.stage_id} (type "${stage.stage_type}") asks for engine "${engine}"${fromCli ? ' (--engine)' : ''}, which no loaded plugin provides for that type (known: ${known.join(', ') || 'none'})`,
      {
        location: fromCli ? undefined : stage.locations.at('engine'),
        context: { stage_id: stage.stage_id },
        hint: `use one of ${known.join(', ')}, or load the plugin that provides engine "${engine}"`,
      },
    );
  }
  return engine;
}

async function phase<T>(omni: Omnistage, stageId: number, replicaId: number, name: ReplicaPhase, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  omni.events.emit({ type: 'replica:phase', stage_id: stageId, replica_id: replicaId, phase: name, status: 'start' });
  const result = await run();
  omni.events.emit({
    type: 'replica:phase',
    stage_id: stageId,
    replica_id: replicaId,
    phase: name,
    status: 'end',
    duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
  });
  return result;
}

/**
 * Plans a loaded pipeline: replica layout, device mapping, per-replica metadata, engine args and
 * worker (through the hooks), lock sets, launch groups and admission. Deterministic for a given
 * config, options and set of plugins; starts nothing.
 */
export async function planPipeline(omni: Omnistage, config: PipelineConfig, options: PlanOptions = {}): Promise<InitPlan> {
  omni.seal();
  const platform = options.platform ?? 'cuda';
  const env = options.env ?? process.env;
  const { visible, envWasSet } = resolveVisibleDevices(platform, env, options.detectedDeviceCount);
  const warnings: Diagnostic[] = [...config.warnings];
  const ctx: PlanContext = {
    config,
    platform,
    visibleDevices: visible,
    options,
    runId: options.runId ?? PLAN_ONLY_RUN_ID,
    model: options.model ?? config.model,
    logger: omni.logger,
    warn: (d) => warnings.push(d),
  };

  const defs = resolveStageTypes(omni, config);
  const engines = config.stages.map((stage, i) => resolveEngine(omni, stage, defs[i]!, options));
  config.stages.forEach((stage, i) => {
    defs[i]!.validateStage?.(stage, ctx);
    omni.engine(stage.stage_type, engines[i]!)!.validateStage?.(stage, ctx);
  });
  await omni.hooks.validateConfig.promise(config, ctx);

  const layout = computeReplicaLayout(config.stages, { devicesPerReplica: (s) => defs[s.stage_idx]!.devicesPerReplica(s) });

  const stagePlans: StagePlan[] = [];
  for (const [idx, stage] of config.stages.entries()) {
    const def = defs[idx]!;
    const count = layout.replicasPerStage[idx] ?? 1;
    const split = layout.replicaDevices.get(idx);
    const replicas: ReplicaPlan[] = [];
    for (let r = 0; r < count; r++) {
      const devices = split ? (split[r] ?? null) : stage.runtime.devices;
      const replicaStage = stageForReplica(stage, devices);
      const mapped = mapLogicalDevices(idx, devices, visible, envWasSet, stage.locations.at('runtime.devices'));
      warnings.push(...mapped.warnings);
      const rctx: ReplicaContext = {
        plan: ctx,
        stage: replicaStage,
        replicaId: r,
        numReplicas: count,
        engine: engines[idx]!,
        devices,
        physicalDevices: mapped.physical,
        env: stageRuntimeEnv({ stage: replicaStage, replicaId: r, platform, physicalDevices: mapped.physical, runId: ctx.runId }),
        metadata: { ...extractStageMetadata(replicaStage), replica_id: r },
        engineArgs: replicaStage.engine_args,
      };
      rctx.metadata = await phase(omni, stage.stage_id, r, 'metadata', async () => {
        const hook = omni.hooks.extractMetadata.get(stage.stage_type);
        return hook ? await hook.promise(rctx.metadata, rctx) : rctx.metadata;
      });
      rctx.engineArgs = await phase(omni, stage.stage_id, r, 'args', () =>
        omni.hooks.buildArgs.promise(rctx.engineArgs, rctx).then((a: EngineArgs | undefined) => a ?? rctx.engineArgs),
      );
      const worker = await phase(omni, stage.stage_id, r, 'worker', async () => {
        const spec = await omni.hooks.resolveWorker.get(stage.stage_type)?.promise(rctx);
        if (!spec) {
          throw new OmniError('OMNI_ENGINE_UNKNOWN', `no plugin resolved a worker for stage ${stage.stage_id} (engine "${rctx.engine}")`, {
            location: stage.locations.at('engine'),
            context: { stage_id: stage.stage_id, replica_id: r, phase: 'worker' },
            hint: 'the engine plugin is loaded but declined this stage; check its documentation',
          });
        }
        return { ...spec, env: { ...rctx.env, ...spec.env } };
      });
      const lockCount = def.lockDeviceCount ? def.lockDeviceCount(rctx.engineArgs, replicaStage) : lockDeviceCount(rctx.engineArgs);
      const lockDevices = selectLockDevices(mapped.physical ?? visible, lockCount, idx, {
        replicaId: r,
        location: stage.locations.at('runtime.devices'),
      });
      replicas.push({
        stage_idx: idx,
        stage_id: stage.stage_id,
        stage_type: stage.stage_type,
        replica_id: r,
        num_replicas: count,
        launch_mode: 'local',
        devices,
        physical_devices: mapped.physical ?? [...visible],
        lock_devices: lockDevices,
        group: -1,
        engine: rctx.engine,
        engine_args: rctx.engineArgs,
        metadata: rctx.metadata,
        worker,
        stage: replicaStage,
      });
    }
    stagePlans.push({
      stage_idx: idx,
      stage_id: stage.stage_id,
      stage_type: stage.stage_type,
      num_replicas: count,
      devices_per_replica: def.devicesPerReplica(stage),
      replicas,
      input_processor: await loadInputProcessor(stage, config.file),
    });
  }

  const all = stagePlans.flatMap((s) => s.replicas);
  // Spec b.29: one stage × one replica may run its engine inside the orchestrator, behind the same
  // client interface; --no-inline keeps it a process.
  const only = all.length === 1 ? all[0] : undefined;
  if (only?.worker.inline_module && !options.noInline) only.worker = { ...only.worker, inline: true };
  const groups = launchGroups(all, visible);
  const groupOf = launchGroupIds(groups);
  for (const rep of all) rep.group = groupOf.get(replicaKey(rep.stage_id, rep.replica_id)) ?? -1;
  warnings.push(
    ...checkAdmission(all, {
      reserve: options.memoryReserve ?? 0,
      allowOvercommit: options.allowOvercommit ?? false,
      visible,
      locate: (stageId) => config.stages.find((s) => s.stage_id === stageId)?.locations.at('engine_args.gpu_memory_utilization'),
    }),
  );

  const transfers = stageTransfers(stagePlans, new Set(omni.connectorNames()));
  warnings.push(
    ...unimplementedConnectorWarnings(transfers, stagePlans, (stageId) =>
      config.stages.find((s) => s.stage_id === stageId)?.locations.at('output_connectors'),
    ),
  );

  const plan: InitPlan = {
    platform,
    device_env: [...PLATFORMS[platform].deviceEnv],
    visible_devices: [...visible],
    stages: stagePlans,
    groups,
    transfers,
    warnings,
  };
  omni.hooks.planned.call(plan);
  omni.events.emit({ type: 'pipeline:planned', replicas: all.length, groups: groups.length });
  return plan;
}
