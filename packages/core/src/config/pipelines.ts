/**
 * The pipeline registry. Upstream keeps topology (which stages exist, their stage types, who feeds
 * whom, which stage is the final output of what type) in per-model Python pipeline code; deploy
 * files only carry placement and tuning. Here plugins register that topology as data
 * (`omni.definePipeline`), and the loader selects an entry by the file's `pipeline:` key, the
 * `--pipeline` flag or the model (see `choosePipeline`). Core knows no stage type: every value is
 * the plugin's.
 */
import { OmniError } from '../errors.js';

/** The input and next-stage processors of a stage for one `async_chunk` setting (Python dotted paths). */
export interface StageProcessors {
  readonly custom_process_input_func: string | null;
  /** Written to `engine_args.custom_process_next_stage_input_func` when set. */
  readonly custom_process_next_stage_input_func: string | null;
}

/** Topology and defaults of one stage of a registered pipeline. */
export interface PipelineStageDefinition {
  /** Matched against the deploy file's `stage_id`. */
  readonly stage_id: number;
  /** The stage's role (`thinker`, `code2wav`, `dit`): `engine_args.model_stage`, strategy-file role key. */
  readonly model_stage: string;
  /** Stage type, handled by a stage-type plugin. */
  readonly stage_type: string;
  readonly engine_input_source: readonly number[];
  readonly final_output: boolean;
  readonly final_output_type?: string | null;
  /** Upstream `owns_tokenizer`. */
  readonly is_comprehension?: boolean;
  /** `runtime.requires_multimodal_data` unless the deploy file sets it. */
  readonly requires_multimodal_data?: boolean;
  /** Engine-arg defaults: the deploy file's values win. */
  readonly engine_args?: Readonly<Record<string, unknown>>;
  /** Engine args the pipeline owns (`model_stage`, `worker_type`): they win over the deploy file. */
  readonly pinned_engine_args?: Readonly<Record<string, unknown>>;
  /** Sampling params applied over the deploy file's `default_sampling_params` (the registry wins, as upstream). */
  readonly sampling_constraints?: Readonly<Record<string, unknown>>;
  /** Processors chosen by the pipeline's `async_chunk` (upstream `_select_processor_funcs`). */
  readonly processors?: { readonly async_chunk: StageProcessors; readonly sync: StageProcessors };
  readonly prompt_expand_func?: string | null;
  readonly cfg_kv_collect_func?: string | null;
  /** Model-specific stage keys passed through to `StageConfig.extras` (`tts_args`). */
  readonly extras?: Readonly<Record<string, unknown>>;
}

/** A pipeline: the topology a deploy file's stages are merged into. */
export interface PipelineDefinition {
  /** Registry key: the deploy file's `pipeline:` value and the HF `model_type` that selects it. */
  readonly name: string;
  readonly description?: string;
  /** HF `architectures[*]` values that select it when the model type is not a registry key. */
  readonly hf_architectures?: readonly string[];
  /** Extra condition on the model's `config.json` for the architecture fallback: every key must equal. */
  readonly hf_config_match?: Readonly<Record<string, string>> | null;
  /** `model_index.json` `_class_name` of a diffusers checkpoint that selects it. */
  readonly diffusers_class_name?: string | null;
  /**
   * The file name its deploy config ships under, where it is not `<name>.yaml` (upstream's
   * `default_deploy_config`): a deploy file of that name with nothing else selecting a pipeline
   * selects this one.
   */
  readonly deploy_file?: string | null;
  readonly stages: readonly PipelineStageDefinition[];
  /**
   * `false`: no stage can stream async chunks to the next, so `async_chunk: true` (the deploy
   * default) is an error for a pipeline whose stages feed each other, as upstream raises.
   */
  readonly streams_chunks?: boolean;
  /**
   * Other topologies the model's `config.json` selects (upstream resolvers): the first variant whose
   * `when` keys all equal the config's values replaces `stages`.
   */
  readonly variants?: readonly PipelineVariant[];
}

/** A topology a pipeline takes for some model configs (Qwen3-Omni without audio output: thinker only). */
export interface PipelineVariant {
  readonly when: Readonly<Record<string, unknown>>;
  /** Shown as the pipeline's name when chosen (upstream's resolved `model_type`). */
  readonly name?: string;
  readonly stages: readonly PipelineStageDefinition[];
}

/** What is wrong with a stage list (ids unique, inputs inside the list), or undefined. */
function stagesProblem(stages: readonly PipelineStageDefinition[] | undefined): string | undefined {
  if (!Array.isArray(stages) || stages.length === 0) return 'it has no stages';
  const ids = stages.map((s) => s.stage_id);
  if (new Set(ids).size !== ids.length) return `stage ids ${ids.join(', ')} repeat`;
  for (const s of stages) {
    if (typeof s.stage_type !== 'string' || s.stage_type === '') return `stage ${s.stage_id} has no stage_type`;
    const bad = s.engine_input_source.find((src: number) => src === s.stage_id || !ids.includes(src));
    if (bad !== undefined)
      return `stage ${s.stage_id} takes input from stage ${bad}, which is ${bad === s.stage_id ? 'itself' : 'not in the pipeline'}`;
  }
  return undefined;
}

/** Pipelines by name, in registration order (the order of upstream's architecture fallback). */
export class PipelineRegistry {
  readonly #byName = new Map<string, PipelineDefinition>();

  /** Registers a pipeline after checking its stage ids and edges; a name registered twice is an error. */
  define(definition: PipelineDefinition): void {
    const invalid = (why: string): OmniError =>
      new OmniError('OMNI_PLUGIN_INVALID', `pipeline "${String(definition?.name)}" cannot be defined: ${why}`, {
        hint: 'give each pipeline a unique name and stages with unique ids whose engine_input_source names ids of the same pipeline',
      });
    if (typeof definition?.name !== 'string' || definition.name === '') throw invalid('it has no name');
    if (this.#byName.has(definition.name))
      throw invalid('it is defined twice (two plugins define it; load only one of them)');
    for (const stages of [definition.stages, ...(definition.variants ?? []).map((v) => v.stages)]) {
      const why = stagesProblem(stages);
      if (why !== undefined) throw invalid(why);
    }
    this.#byName.set(definition.name, definition);
  }

  get(name: string): PipelineDefinition | undefined {
    return this.#byName.get(name);
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  /** Every pipeline, in registration order. */
  values(): PipelineDefinition[] {
    return [...this.#byName.values()];
  }

  /** A registry with `definitions` registered in order. */
  static of(definitions: Iterable<PipelineDefinition>): PipelineRegistry {
    const registry = new PipelineRegistry();
    for (const d of definitions) registry.define(d);
    return registry;
  }
}
