import type { EngineArgs, StageConfig } from './config/types.js';
import type { PlanContext, ReplicaContext } from './hooks/contexts.js';
import type { WorkerSpec } from './planning/types.js';
import type { Omnistage } from './omnistage.js';

/**
 * A plugin: a name and an `apply` that taps hooks, listens to events and defines stage types or
 * engines. Everything first-party (llm, diffusion, KV connectors) is written against this same API.
 */
export interface OmnistagePlugin {
  readonly name: string;
  /** semver range of `@omnistage/core` this plugin works with (checked at load). */
  readonly coreVersion?: string;
  /** Names of plugins that must be applied before this one. */
  readonly dependencies?: readonly string[];
  apply(omni: Omnistage): void;
}

/** Identity helper that gives plugin authors type checking and completion. */
export function definePlugin(plugin: OmnistagePlugin): OmnistagePlugin {
  return plugin;
}

/** What a stage-type plugin tells core about its stage type. */
export interface StageTypeDefinition {
  /** The `stage_type` value in YAML, e.g. `llm`. */
  readonly name: string;
  /** Engine used when neither `--engine` nor the stage's `engine:` names one. */
  readonly defaultEngine: string;
  /** Devices one replica occupies (LLM: TP; diffusion: parallel world size). Used to split `devices`. */
  devicesPerReplica(stage: StageConfig): number;
  /** Devices whose init locks a replica takes (default: TP×PP×DP×PCP, ×SP×CFG in `parallel_config`). */
  lockDeviceCount?(engineArgs: EngineArgs, stage: StageConfig): number;
  /** Throws an OmniError (with `stage.locations`) for invalid stages, or warns through `ctx.warn`. */
  validateStage?(stage: StageConfig, ctx: PlanContext): void;
  /** JSON Schema of this type's `engine_args`, merged into `omnistage schema`. */
  readonly engineArgsJsonSchema?: object;
}

/**
 * `EngineDefinition.stageType` of an engine that serves every stage type, whichever plugin defines
 * it (e.g. `python`, which runs any Python engine). A type's own engine of the same name wins.
 */
export const ANY_STAGE_TYPE = '*';

/** An engine that can run replicas of one stage type (or of every one: {@link ANY_STAGE_TYPE}). */
export interface EngineDefinition {
  /** Stage type this engine serves, or {@link ANY_STAGE_TYPE}. */
  readonly stageType: string;
  /** The name used in `engine:` and `--engine`. */
  readonly name: string;
  /** The process to start for one replica and how it attaches. */
  resolveWorker(ctx: ReplicaContext): WorkerSpec | Promise<WorkerSpec>;
  /** Engine-specific validation of a stage that will run on this engine. */
  validateStage?(stage: StageConfig, ctx: PlanContext): void;
}
