import type { Diagnostic } from '../diagnostics.js';
import type { LocationIndex } from './location-index.js';
import type { PipelineSelection } from './pipeline-lookup.js';

/** Engine arguments of a stage: passed through to the engine after plugins normalise them. */
export type EngineArgs = Record<string, unknown>;

/** A connector named in `runtime.connectors` / top-level `connectors`, or given inline. */
export interface ConnectorSpec {
  /** Connector class name, e.g. `SharedMemoryConnector`. */
  name: string;
  extra: Record<string, unknown>;
}

/** `input_connectors` / `output_connectors` values: a connector name or an inline spec. */
export type ConnectorRef = string | ConnectorSpec;

/** One `engine_input_source` edge as the transfer config declares it. */
export interface EdgeConfig {
  from: number;
  to: number;
  window_size?: number;
  max_inflight?: number;
}

/** What to do when a replica dies after it was ready (issue: requests through the pipeline). */
export interface RestartPolicy {
  policy: 'never' | 'on-failure';
  max_restarts: number;
  backoff_ms: number;
}

/** A stage's `runtime` section: devices, replicas, env, restart policy, connectors. */
export interface StageRuntimeConfig {
  /** Informational upstream flag; every replica is a process (or inline, where allowed). */
  process: boolean;
  /** Logical device indices as written (`"0,1"`); an int in YAML becomes its string. null = inherit all visible. */
  devices: string | null;
  num_replicas: number;
  /**
   * Head mode (docs/scale-out.md): live replicas, local or remote, this stage needs before the
   * pipeline is ready (`runtime.min_ready`, else the file's top-level `runtime.min_ready`, else 1).
   */
  min_ready: number;
  /** `runtime.env`, values stringified the way upstream does (Python `str()`: `true` → `"True"`). */
  env: Record<string, string>;
  requires_multimodal_data: boolean;
  restart: RestartPolicy;
  /** Most requests one replica serves at once (omnistage extension); absent: the router's default. */
  max_inflight_per_replica?: number;
}

/**
 * Pipeline-wide liveness settings (top-level `runtime:`, omnistage extension), as written; a
 * missing one takes its default (heartbeats every 2 s, 30 s timeout, readiness every 5 s, 3 failures).
 */
export interface LivenessConfig {
  heartbeat_interval_s?: number;
  heartbeat_timeout_s?: number;
  readiness_interval_s?: number;
  readiness_failures?: number;
}

/**
 * One stage after loading, in the legacy (`stage_args`) shape that both upstream schemas normalise
 * to. Keys use upstream's snake_case so YAML, plan JSON and engine args read the same.
 */
export interface StageConfig {
  /** Position in the stage list. */
  stage_idx: number;
  /** The configured `stage_id` (need not equal the position). */
  stage_id: number;
  /** `llm` when absent. Must be handled by a stage-type plugin. */
  stage_type: string;
  /** omnistage's own stage-level `engine:` key; null = the stage type's default engine. */
  engine: string | null;
  engine_args: EngineArgs;
  runtime: StageRuntimeConfig;
  engine_input_source: number[];
  final_output: boolean;
  final_output_type: string | null;
  is_comprehension: boolean;
  default_sampling_params: Record<string, unknown>;
  /** A Python dotted path (opaque, passed to engines) or a JS module specifier `./file.js#export`. */
  custom_process_input_func: string | null;
  prompt_expand_func: string | null;
  cfg_kv_collect_func: string | null;
  input_connectors: Record<string, ConnectorRef>;
  output_connectors: Record<string, ConnectorRef>;
  /** Model-specific keys passed through untouched (`tts_args`, `subtalker_sampling_params`, ...). */
  extras: Record<string, unknown>;
  /** Source locations of this stage's keys (dotted paths relative to the stage). */
  locations: LocationIndex;
  /**
   * Engine args `--stage-overrides` named bare (`{"1": {"vae_use_slicing": true}}`, not under
   * `engine_args`). An engine that declares its args refuses those it does not take: a bare key
   * may be a typo of any key an override knows, so it is an error there, not a warning.
   */
  override_args?: readonly string[];
}

/** How requests spread over a stage's replicas (the router's policy). */
export type ReplicaBalance = 'round-robin' | 'least-inflight';

/** Reference to a plugin named in the pipeline file (`plugins:`) or on the CLI (`--plugin`). */
export interface PluginRef {
  /** npm package name or module path relative to the pipeline file. */
  specifier: string;
  options: Record<string, unknown>;
}

/** A loaded, validated pipeline file: stages, edges, connectors, plugins, model, warnings. */
export interface PipelineConfig {
  /** Absolute path of the file that was loaded (`<inline>` for text without a path). */
  file: string;
  /** Which upstream schema the file used. */
  schema: 'legacy' | 'deploy';
  /** Top-level `model:` (ours); the CLI's `--model` wins. */
  model: string | null;
  /** The registered pipeline that gave the stages their topology (null: the file spells it out). */
  pipeline: string | null;
  /** How that pipeline was selected (`--pipeline`, the `pipeline:` key, the model), null without one. */
  pipeline_selected_by: PipelineSelection | null;
  /** Where stage topology came from: a registered pipeline, or the file itself (legacy stage_args, or spelt out per stage). */
  topology: 'registry' | 'file';
  /** Upstream `session_mode` (deploy files): `turn` unless the file says `duplex`. */
  session_mode: 'turn' | 'duplex';
  /** Upstream `duplex_session` (deploy files), as written. */
  duplex_session: Record<string, number>;
  /** Replica balancing a strategy file derived (`routing` of its stage_replica axes), if any. */
  balance?: ReplicaBalance;
  async_chunk: boolean;
  connectors: Record<string, ConnectorSpec>;
  edges: EdgeConfig[];
  stages: StageConfig[];
  plugins: PluginRef[];
  /** Liveness settings the file sets (absent: it sets none). */
  liveness?: LivenessConfig;
  /** Deprecated / dead keys and other non-fatal findings, each with its location. */
  warnings: Diagnostic[];
  /** Locations of top-level keys (`connectors.x`, `edges.0`, `plugins.1`, ...). */
  locations: LocationIndex;
}
