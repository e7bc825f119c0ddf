import type { StageConfig } from '../config/types.js';
import type { StageMetadata } from './types.js';

/**
 * The common fields of a stage's {@link StageMetadata} (upstream `extract_stage_metadata` in
 * `vllm_omni/engine/stage_init_utils.py`); the stage-type plugin fills in the rest (sampling-params shape, ROCm attention backend).
 *
 * - `stage_type` defaults to `llm`; `final_output` and `is_comprehension` to false (upstream's
 *   code defaults them so; its docs say true).
 * - `model_stage` and `engine_output_type` are read from `engine_args` by key. Upstream read them
 *   by attribute, so plain-dict configs got null; later upstream switched to key access and so do we.
 * - Stage-type rules live in the stage type's plugin (an `extractMetadata` tap): e.g. diffusion
 *   stages drop `engine_output_type` and `prompt_expand_func` and keep `cfg_kv_collect_func`, which
 *   this common part leaves null.
 * - Hook strings stay strings: nothing is imported here (Python dotted paths are opaque to us, JS
 *   specifiers are resolved by the hook phase).
 * - `replica_id` is 0; callers set it per replica.
 *
 * `runtime_cfg` is the stage's own `runtime` object, not a copy, as upstream.
 */
export function extractStageMetadata(stage: StageConfig): StageMetadata {
  const stageType = stage.stage_type === '' ? 'llm' : stage.stage_type;
  const args = stage.engine_args;
  return {
    stage_id: stage.stage_id,
    stage_type: stageType,
    engine_output_type: stringOrNull(args['engine_output_type']),
    is_comprehension: stage.is_comprehension,
    requires_multimodal_data: stage.runtime.requires_multimodal_data,
    engine_input_source: [...stage.engine_input_source],
    final_output: stage.final_output,
    final_output_type: stage.final_output_type,
    default_sampling_params: { ...stage.default_sampling_params },
    custom_process_input_func: hook(stage.custom_process_input_func),
    model_stage: stringOrNull(args['model_stage']),
    runtime_cfg: stage.runtime,
    prompt_expand_func: hook(stage.prompt_expand_func),
    cfg_kv_collect_func: null,
    replica_id: 0,
  };
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** Upstream only resolves hooks that are truthy; an empty string means "no hook". */
function hook(value: string | null): string | null {
  return value === null || value === '' ? null : value;
}
