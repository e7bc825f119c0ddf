/**
 * Built-in pipeline topologies for deploy files. Upstream keeps topology (stage types, inputs,
 * final outputs, worker types) in per-model Python pipeline code; deploy YAMLs only carry placement
 * and tuning. These entries cover the models whose deploy files ship as fixtures; other deploy
 * files fall back to a chain in stage_id order.
 */

/** Topology of one stage of a built-in pipeline. */
export interface PipelineStageTopology {
  stage_id: number;
  stage_type: 'llm' | 'diffusion';
  /** `ar` / `generation` for LLM stages; written to `engine_args.worker_type`. */
  worker_type?: 'ar' | 'generation';
  /** Written to `engine_args.model_stage` (wins over the deploy file, as upstream). */
  model_stage?: string;
  /** Written to `engine_args.engine_output_type` (a deploy value wins). */
  engine_output_type?: string;
  /** Written to `engine_args.model_arch` (a deploy value wins). */
  model_arch?: string;
  engine_input_source: readonly number[];
  final_output: boolean;
  final_output_type?: string;
  /** Upstream `owns_tokenizer`. */
  is_comprehension: boolean;
  requires_multimodal_data?: boolean;
}

/** The stage graph of a known pipeline (deploy files carry none). */
export interface PipelineTopology {
  name: string;
  description: string;
  stages: readonly PipelineStageTopology[];
}

const bagelStages: readonly PipelineStageTopology[] = [
  {
    stage_id: 0,
    stage_type: 'llm',
    worker_type: 'ar',
    is_comprehension: true,
    engine_input_source: [],
    final_output: true,
    final_output_type: 'text',
  },
  {
    stage_id: 1,
    stage_type: 'diffusion',
    is_comprehension: false,
    engine_input_source: [0],
    final_output: true,
    final_output_type: 'image',
  },
];

/** Pipelines known without any plugin, by registry key. */
export const BUILT_IN_PIPELINES: Readonly<Record<string, PipelineTopology>> = {
  bagel: { name: 'bagel', description: 'BAGEL: AR thinker → diffusion transformer', stages: bagelStages },
  bagel_think: { name: 'bagel_think', description: 'BAGEL think mode: AR thinker (decodes <think>) → diffusion transformer', stages: bagelStages },
  glm_image: {
    name: 'glm_image',
    description: 'GLM-Image: AR prior tokens → diffusion (DiT + VAE)',
    stages: [
      {
        stage_id: 0,
        stage_type: 'llm',
        worker_type: 'ar',
        model_arch: 'GlmImageForConditionalGeneration',
        is_comprehension: true,
        engine_input_source: [],
        final_output: false,
      },
      { stage_id: 1, stage_type: 'diffusion', is_comprehension: false, engine_input_source: [0], final_output: true, final_output_type: 'image' },
    ],
  },
  qwen3_omni_moe: {
    name: 'qwen3_omni_moe',
    description: 'Qwen3-Omni-MoE: thinker → talker → code2wav',
    stages: [
      {
        stage_id: 0,
        stage_type: 'llm',
        worker_type: 'ar',
        model_stage: 'thinker',
        engine_output_type: 'latent',
        model_arch: 'Qwen3OmniMoeForConditionalGeneration',
        is_comprehension: true,
        engine_input_source: [],
        final_output: true,
        final_output_type: 'text',
      },
      {
        stage_id: 1,
        stage_type: 'llm',
        worker_type: 'ar',
        model_stage: 'talker',
        engine_output_type: 'latent',
        model_arch: 'Qwen3OmniMoeForConditionalGeneration',
        is_comprehension: false,
        engine_input_source: [0],
        final_output: false,
      },
      {
        stage_id: 2,
        stage_type: 'llm',
        worker_type: 'generation',
        model_stage: 'code2wav',
        engine_output_type: 'audio',
        model_arch: 'Qwen3OmniMoeForConditionalGeneration',
        is_comprehension: false,
        engine_input_source: [1],
        final_output: true,
        final_output_type: 'audio',
      },
    ],
  },
};

/** The pipeline registered under `name` (extra entries win over the built-ins). */
export function findPipeline(
  name: string,
  extra: Readonly<Record<string, PipelineTopology>> = {},
): PipelineTopology | undefined {
  return Object.hasOwn(extra, name) ? extra[name] : Object.hasOwn(BUILT_IN_PIPELINES, name) ? BUILT_IN_PIPELINES[name] : undefined;
}
