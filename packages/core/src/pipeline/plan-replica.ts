import { OmniError } from '../errors.js';
import type { EngineArgs, StageConfig } from '../config/types.js';
import type { EventBus } from '../events/event-bus.js';
import type { OmniHooks } from '../hooks/hooks.js';
import type { PlanContext, ReplicaContext, StageLayout } from '../hooks/contexts.js';
import type { Diagnostic } from '../diagnostics.js';
import { mapLogicalDevices } from '../planning/device-mapping.js';
import { lockDeviceCount, selectLockDevices } from '../planning/lock-devices.js';
import { stageRuntimeEnv } from '../planning/runtime-env.js';
import { extractStageMetadata } from '../planning/stage-metadata.js';
import type { ReplicaPlan, StageMetadata, WorkerSpec } from '../planning/types.js';
import type { StageTypeDefinition } from '../plugins/definition-types.js';
import { runPhase, type PhaseScope } from './run-phase.js';

/** What planning one replica needs besides the replica itself. */
export interface ReplicaPlanner {
  readonly hooks: OmniHooks;
  readonly events: EventBus;
  readonly ctx: PlanContext;
  readonly layout: readonly StageLayout[];
  readonly warnings: Diagnostic[];
  /** Devices visible to the launcher, and whether the platform's device variable was set. */
  readonly visible: readonly string[];
  readonly envWasSet: boolean;
}

/** Which replica of which stage, on which devices, run by which engine. */
export interface ReplicaSlot {
  readonly stage: StageConfig;
  readonly def: StageTypeDefinition;
  readonly engine: string;
  readonly replicaId: number;
  readonly count: number;
  readonly devices: string | null;
}

/**
 * The config of one replica of a stage: a copy with `runtime.devices` set to the replica's slice;
 * engine args are copied so no hook can change the loaded config.
 */
export function stageForReplica(stage: StageConfig, devices: string | null): StageConfig {
  return {
    ...stage,
    engine_args: structuredClone(stage.engine_args),
    runtime: { ...stage.runtime, env: { ...stage.runtime.env }, devices },
  };
}

/** The worker phase found no engine tap that answers: the engine plugin declined this stage. */
function noWorker(stage: StageConfig, replicaId: number, engine: string): OmniError {
  return new OmniError(
    'OMNI_ENGINE_UNKNOWN',
    `no plugin resolved a worker for stage ${stage.stage_id} (engine "${engine}")`,
    {
      location: stage.locations.at('engine'),
      context: { stage_id: stage.stage_id, replica_id: replicaId, phase: 'worker' },
      hint: 'the engine plugin is loaded but declined this stage; check its documentation',
    },
  );
}

/**
 * Plans one replica: its device mapping and env, then the three planning phases through the hooks
 * (metadata → args → worker, each one {@link runPhase}), then its lock set.
 */
export async function planReplica(p: ReplicaPlanner, slot: ReplicaSlot): Promise<ReplicaPlan> {
  const { stage, replicaId: r, devices } = slot;
  const idx = stage.stage_idx;
  const replicaStage = stageForReplica(stage, devices);
  const mapped = mapLogicalDevices(idx, devices, p.visible, p.envWasSet, stage.locations.at('runtime.devices'));
  p.warnings.push(...mapped.warnings);
  const rctx: ReplicaContext = {
    plan: p.ctx,
    layout: p.layout,
    stage: replicaStage,
    replicaId: r,
    numReplicas: slot.count,
    engine: slot.engine,
    devices,
    physicalDevices: mapped.physical,
    env: stageRuntimeEnv({
      stage: replicaStage,
      replicaId: r,
      platform: p.ctx.platform,
      physicalDevices: mapped.physical,
      runId: p.ctx.runId,
    }),
    metadata: { ...extractStageMetadata(replicaStage), replica_id: r },
    engineArgs: replicaStage.engine_args,
  };
  const scope: PhaseScope = {
    progress: {
      replica: { stage_id: stage.stage_id, replica_id: r },
      phase: 'metadata',
      tap: null,
      step: null,
      detail: null,
    },
    events: p.events,
  };
  rctx.metadata = await runPhase<StageMetadata>(scope, 'metadata', {
    hook: p.hooks.extractMetadata.get(stage.stage_type),
    mode: 'waterfall',
    args: [rctx.metadata, rctx],
  });
  rctx.engineArgs = await runPhase<EngineArgs>(scope, 'args', {
    hook: p.hooks.buildArgs,
    mode: 'waterfall',
    args: [rctx.engineArgs, rctx],
  });
  const spec = await runPhase<WorkerSpec | undefined>(scope, 'worker', {
    hook: p.hooks.resolveWorker.get(stage.stage_type),
    mode: 'bail',
    args: [rctx],
  });
  if (!spec) throw noWorker(stage, r, rctx.engine);
  const lockCount = slot.def.lockDeviceCount
    ? slot.def.lockDeviceCount(rctx.engineArgs, replicaStage)
    : lockDeviceCount(rctx.engineArgs);
  return {
    stage_id: stage.stage_id,
    replica_id: r,
    launch_mode: 'local',
    devices,
    physical_devices: mapped.physical ?? [...p.visible],
    lock_devices: selectLockDevices(mapped.physical ?? p.visible, lockCount, idx, {
      replicaId: r,
      location: stage.locations.at('runtime.devices'),
    }),
    group: -1,
    engine_args: rctx.engineArgs,
    metadata: rctx.metadata,
    worker: { ...spec, env: { ...rctx.env, ...spec.env } },
  };
}
