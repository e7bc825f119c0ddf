import type { EngineArgs, StageConfig } from '../config/types.js';
import type { PlanContext, ReplicaContext, ReplicaRuntime } from '../hooks/contexts.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { InputProcessor, StagePlan, WorkerSpec } from '../planning/types.js';

/**
 * What a stage-type plugin tells core about its stage type. Every callback is plugin code: a
 * throw becomes `OMNI_PLUGIN_FAILED` naming the plugin and the callback (exit 2, a plan error).
 */
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

/**
 * An engine that can run replicas of one stage type (or of every one: {@link ANY_STAGE_TYPE}): everything core needs to know about it in
 * one place (the worker to start, how to attach to it, what it refuses).
 */
export interface EngineDefinition {
  /** Stage type this engine serves, or {@link ANY_STAGE_TYPE}. */
  readonly stageType: string;
  /** The name used in `engine:` and `--engine`. */
  readonly name: string;
  /** The process to start for one replica and how it attaches. */
  resolveWorker(ctx: ReplicaContext): WorkerSpec | Promise<WorkerSpec>;
  /** Engine-specific validation of a stage that will run on this engine. */
  validateStage?(stage: StageConfig, ctx: PlanContext): void;
  /**
   * Attaches to a started replica of this engine when core's own attach does not fit (e.g. HTTP).
   * Core supervises it: the process exiting, the deadline and a cancel end it at once. Return
   * undefined to leave the replica to core's attach.
   */
  attach?(process: ReplicaProcessHandle, runtime: ReplicaRuntime): Promise<ReplicaConnection | undefined>;
  /**
   * Takes over the request flow of the edge from `producer` into a stage of this engine, when the
   * engine pair defines one of its own (vLLM's disaggregated prefill → decode: the decode request
   * is the user's, carrying what the prefill answered). Asked once per edge with the stage plan of
   * each side (its engine, config and template replica's built engine args); undefined leaves the
   * edge to the router's default (the producer's output is the input).
   */
  edgeFlow?(producer: StagePlan, consumer: StagePlan, ctx: PlanContext): EdgeFlow | undefined;
  /**
   * The engine's workers read a request's input as it streams (`request.inputs`, docs/protocol.md
   * "Streamed input"): a streaming edge (`async_chunk`) into a stage on this engine starts it on the
   * first chunk. Unset: the stage receives its whole input when its sources finished, as without
   * `async_chunk`. A function decides per stage (an engine that runs user code: the code says).
   */
  readonly streamsInput?: boolean | ((stage: StageConfig) => boolean);
  /**
   * The engine args this engine takes, checked by key when a stage is planned on it (see
   * {@link EngineArgsDeclaration}). Unset: like `'any'` — nothing is checked by key.
   */
  readonly engineArgs?: EngineArgsDeclaration;
}

/**
 * What engine args an engine takes:
 * - a list of keys, or a zod object schema (`z.object({...})`: the keys of its shape, and its
 *   values are checked with `safeParse`): any other key in a stage's `engine_args` is warning
 *   `OMNI_WARN_ENGINE_ARG_UNKNOWN` at the key, with did-you-mean, and a key `--stage-overrides`
 *   names bare is an error. Keys core reads itself (`gpu_memory_utilization`, the parallel sizes,
 *   `parallel_config`, `model_stage`, `engine_output_type`) and keys of shared schemas
 *   (`defineSharedEngineArgsSchema`, e.g. `omni_kv_config`) are always taken.
 * - `'any'`: every key is passed on to the engine as it is (`vllm`: as a command-line flag; the
 *   engine may warn itself), and `--stage-overrides` may name any key bare.
 *
 * Either way, a near miss of a key the planner reads (`tensor_paralel_size`) is an error: planned
 * without it, the replica would be placed or admitted as if it were absent.
 */
export type EngineArgsDeclaration = 'any' | readonly string[] | EngineArgsZodSchema;

/** The part of a zod object schema core uses (any zod version: core never imports the plugin's zod). */
export interface EngineArgsZodSchema {
  readonly shape: Readonly<Record<string, unknown>>;
  safeParse(value: unknown): {
    success: boolean;
    error?: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } | undefined;
  };
}

/** An engine's own request flow over one edge (see {@link EngineDefinition.edgeFlow}). */
export interface EdgeFlow {
  /** What the plan shows for the edge (`transfers[].flow`), e.g. which request each side gets. */
  readonly description: string;
  /**
   * Builds the consumer's request input from the producer's final output and the user's input.
   * A stage's own `custom_process_input_func` still wins over it.
   */
  readonly inputProcessor: InputProcessor;
}
