import type { Diagnostic } from '../diagnostics.js';
import type { ChunkProcessorDefinition } from '../orchestrate/chunk-processor.js';
import type { EngineArgs, LivenessConfig, PipelineConfig, StageConfig, StageRuntimeConfig } from '../config/types.js';

/** Platforms omnistage can plan for. `cpu` offers virtual devices so any topology runs anywhere. */
export type PlatformName = 'cuda' | 'rocm' | 'npu' | 'xpu' | 'cpu';

/** Lightweight stage attributes (upstream `StageMetadata`), extracted once per replica. */
export interface StageMetadata {
  stage_id: number;
  stage_type: string;
  engine_output_type: string | null;
  is_comprehension: boolean;
  requires_multimodal_data: boolean;
  engine_input_source: number[];
  final_output: boolean;
  final_output_type: string | null;
  default_sampling_params: Record<string, unknown>;
  custom_process_input_func: string | null;
  model_stage: string | null;
  runtime_cfg: StageRuntimeConfig | null;
  prompt_expand_func: string | null;
  cfg_kv_collect_func: string | null;
  replica_id: number;
}

/** How a worker process is started and how it attaches. Produced by the resolve-worker phase. */
export interface WorkerSpec {
  command: string;
  args: string[];
  /** Environment additions for this replica only (never written to `process.env`). */
  env: Record<string, string>;
  cwd?: string;
  /** `control`: the worker dials the control endpoint; `http`: omnistage polls `readiness_url`. */
  attach: 'control' | 'http';
  readiness_url?: string;
  /**
   * The worker is expected to declare init phases in its hello (docs/protocol.md "Init phases"): its
   * devices are taken shared from the start, so co-located replicas spawn and load concurrently. The
   * hello stays the authority: one without phases still waits to have its devices alone before its
   * welcome. Without this the devices are taken exclusive and turn shared at such a hello.
   */
  phases?: boolean;
  /** Port assigned to engines that serve HTTP. */
  port?: number;
  /** Process-group shim for engines that fork children of their own (e.g. `vllm serve`). */
  group_shim?: boolean;
  /** Engines that can run inside the orchestrator (diffusion inline mode) name the worker module here. */
  inline_module?: string;
  /**
   * Set by the planner when this replica runs as a worker thread of the orchestrator (a pipeline of
   * exactly one stage with one replica whose engine has an `inline_module`, unless `--no-inline`).
   */
  inline?: boolean;
}

/**
 * One replica of one stage: the unit that is locked, spawned and attached. It holds only what
 * differs from one replica of its stage to the next; what they share (config, engine, topology)
 * is its {@link StagePlan}'s. `stage_id` is the replica's key, not config.
 */
export interface ReplicaPlan {
  readonly stage_id: number;
  readonly replica_id: number;
  readonly launch_mode: 'local' | 'remote';
  /** The replica's logical device string, or null (inherit all visible devices). */
  readonly devices: string | null;
  /** Physical ids after mapping through the platform's visible devices. */
  readonly physical_devices: readonly string[];
  /** Physical ids locked during init, ascending. */
  readonly lock_devices: readonly string[];
  /** Launch group id (connected component of physical-device overlap). */
  readonly group: number;
  /** Engine args after every `buildArgs` tap: they may name the replica (e.g. its KV transfer rank). */
  readonly engine_args: Readonly<EngineArgs>;
  readonly metadata: Readonly<StageMetadata>;
  readonly worker: Readonly<WorkerSpec>;
}

/**
 * One stage of a plan: its config, engine and replicas. Everything a stage's replicas share is read
 * here, never back from a replica, so a stage planned with no replica (`num_replicas: 0`, filled by
 * agents) has the same stage-level answers as any other.
 */
export interface StagePlan {
  readonly stage_idx: number;
  readonly stage_id: number;
  readonly stage_type: string;
  /**
   * The stage's config as loaded: topology (`engine_input_source`, `final_output`), runtime
   * (`devices` as configured, restart, liveness, in-flight bound), routing fields and the engine
   * args before any `buildArgs` tap. A replica's own config is {@link replicaStageConfig}.
   */
  readonly stage: StageConfig;
  /** The engine that runs every replica of the stage (`--engine` > stage `engine:` > stage type default). */
  readonly engine: string;
  /**
   * Replica 0 as planned, whether or not it is in {@link replicas}: the stage's built engine args,
   * metadata and worker (how its replicas attach, what they send over). A replica started elsewhere
   * (an agent's, registered with the head) is derived from it with its own id.
   */
  readonly template: ReplicaPlan;
  /** Replicas planned to run (0 for a stage that agents fill, with `allowZeroReplicas`). */
  readonly num_replicas: number;
  readonly devices_per_replica: number;
  readonly replicas: readonly ReplicaPlan[];
  /**
   * The stage's JS input processor (`custom_process_input_func: ./file.js#fn`), imported at plan
   * time; null for the default processor or a Python path (which engines receive as a string).
   * Not part of `plan --json`.
   */
  readonly input_processor?: InputProcessor | null;
  /**
   * The stage's streaming in-edge (see {@link TransferPlan.streaming}) with its chunk processor,
   * resolved at plan time. Not part of `plan --json` (its transfer says it).
   */
  readonly streamed_input?: StreamedInput;
}

/** Where a stage's streamed input comes from and how the chunks are made. */
export interface StreamedInput {
  readonly from: number;
  readonly processor: ChunkProcessorDefinition;
  readonly options: Readonly<Record<string, unknown>>;
}

/** The final output of one upstream stage for one request. */
export interface StageResult {
  stage_id: number;
  replica_id: number;
  /** The data of the stage's last output chunk (engine-defined: `{kind: 'final', text, ...}`, an image...). */
  data: unknown;
}

/** Context given to an input processor. */
export interface InputProcessorContext {
  /** The stage that will receive the input. */
  stage: StageConfig;
  /** What the user sent to the pipeline. */
  userInput: unknown;
  request_id: string;
}

/**
 * Builds a stage's request input from its sources' outputs (`engine_input_source` order). A stage
 * without sources receives the user input unchanged and has no processor.
 */
export type InputProcessor = (sources: StageResult[], ctx: InputProcessorContext) => unknown | Promise<unknown>;

/** Replicas whose devices overlap: started one after another, in plan order. */
export interface LaunchGroup {
  id: number;
  lock_devices: string[];
  /** `[stage_id, replica_id]` pairs in start order. */
  replicas: [number, number][];
}

/**
 * How the outputs of one stage reach a stage that reads them (`engine_input_source`):
 * - `shm`: SharedMemoryConnector — payloads above `threshold_bytes` through a /dev/shm file, the
 *   rest inline;
 * - `plugin`: the connector class a plugin defines (`omni.defineConnector`);
 * - `engine`: the producer's engine moves its KV cache itself over `connector` (vLLM's
 *   `--kv-transfer-config`); its outputs still pass through the router;
 * - `inline`: inside the control messages (no connector, or one nothing implements for the engine).
 */
export interface TransferPlan {
  readonly from: number;
  readonly to: number;
  /** The producer's connector class, or null when it has none. */
  readonly connector: string | null;
  readonly carried_by: 'shm' | 'plugin' | 'engine' | 'inline';
  /** `shm` only: payloads of more bytes than this go through shared memory. */
  readonly threshold_bytes?: number;
  /** Set when the consumer's engine drives the edge's requests itself (`EngineDefinition.edgeFlow`): what each side is sent. */
  readonly flow?: string;
  /**
   * Head mode: producer and consumer may run on different hosts; a payload stored in shared memory
   * is then fetched from the producer's host over TCP (the data plane).
   */
  readonly across_hosts?: true;
  /**
   * Set when the edge streams (`async_chunk: true` and the producer's async-chunk next-stage
   * processor): the consumer starts on the producer's first chunk and reads the rest as they come.
   */
  streaming?: StreamingEdge;
}

/** How a streaming edge turns its producer's outputs into its consumer's input chunks. */
export interface StreamingEdge {
  /** The chunk processor (its name: core's `thinker2talker_async_chunk`, ... or a plugin's). */
  processor: string;
  /** The edge connector's `extra` the processor reads (`codec_chunk_frames`, ...). */
  options: Record<string, unknown>;
}

/**
 * The deterministic result of planning: what `omnistage plan --json` prints. Frozen once built (a
 * change throws): whoever needs another plan derives one (e.g. `markAcrossHosts`).
 */
export interface InitPlan {
  /** The run this plan is for (in every replica's env and every event); `plan-only` for a plan that is only printed. */
  readonly run_id: string;
  readonly platform: PlatformName;
  /** Env var(s) that carry device visibility to children (ROCm: two). */
  readonly device_env: readonly string[];
  /** Physical device ids visible to the launcher. */
  readonly visible_devices: readonly string[];
  /** Where the stages' topology came from: a registered pipeline (and how it was selected) or the file. */
  readonly topology: {
    source: PipelineConfig['topology'];
    pipeline: string | null;
    selected_by: PipelineConfig['pipeline_selected_by'];
  };
  readonly stages: readonly StagePlan[];
  readonly groups: readonly LaunchGroup[];
  /** One per `engine_input_source` edge, in consumer then source order. */
  readonly transfers: readonly TransferPlan[];
  /** The file's liveness settings (top-level `runtime:`), for bring-up; absent: the defaults. */
  readonly liveness?: LivenessConfig;
  readonly warnings: readonly Diagnostic[];
}
