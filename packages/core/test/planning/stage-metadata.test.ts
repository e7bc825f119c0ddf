import { describe, expect, it } from 'vitest';
import { createStageConfig } from '../../src/config/stage-defaults.js';
import { extractStageMetadata } from '../../src/planning/stage-metadata.js';

const hooks = {
  custom_process_input_func: 'vllm_omni.model_executor.stage_input_processors.qwen2_5_omni.thinker2talker',
  prompt_expand_func: './hooks.js#expand',
  cfg_kv_collect_func: './hooks.js#collect',
};

describe('extractStageMetadata', () => {
  it('defaults: llm, final_output and is_comprehension false, replica 0', () => {
    const stage = createStageConfig({ stage_id: 3 });
    expect(extractStageMetadata(stage)).toEqual({
      stage_id: 3,
      stage_type: 'llm',
      engine_output_type: null,
      is_comprehension: false,
      requires_multimodal_data: false,
      engine_input_source: [],
      final_output: false,
      final_output_type: null,
      default_sampling_params: {},
      custom_process_input_func: null,
      model_stage: null,
      runtime_cfg: stage.runtime,
      prompt_expand_func: null,
      cfg_kv_collect_func: null,
      replica_id: 0,
    });
  });

  it('llm: reads model_stage and engine_output_type from engine_args by key, keeps prompt_expand_func', () => {
    const stage = createStageConfig({
      stage_id: 0,
      engine_args: { model_stage: 'thinker', engine_output_type: 'latent', tensor_parallel_size: 2 },
      is_comprehension: true,
      final_output: true,
      final_output_type: 'text',
      engine_input_source: [],
      default_sampling_params: { temperature: 0.9, max_tokens: 2048 },
      runtime: { requires_multimodal_data: true },
      ...hooks,
    });
    const md = extractStageMetadata(stage);
    expect(md).toMatchObject({
      stage_type: 'llm',
      model_stage: 'thinker',
      engine_output_type: 'latent',
      is_comprehension: true,
      requires_multimodal_data: true,
      final_output: true,
      final_output_type: 'text',
      default_sampling_params: { temperature: 0.9, max_tokens: 2048 },
      custom_process_input_func: hooks.custom_process_input_func,
      prompt_expand_func: './hooks.js#expand',
      cfg_kv_collect_func: null,
    });
    expect(md.runtime_cfg).toBe(stage.runtime);
  });

  it('knows no stage type: a diffusion stage gets the common fields only (plugin-diffusion applies its rules in a tap)', () => {
    const stage = createStageConfig({
      stage_id: 1,
      stage_type: 'diffusion',
      engine_args: { model_stage: 'dit', engine_output_type: 'image' },
      is_comprehension: true,
      ...hooks,
    });
    expect(extractStageMetadata(stage)).toMatchObject({
      stage_type: 'diffusion',
      engine_output_type: 'image',
      is_comprehension: true,
      cfg_kv_collect_func: null,
    });
  });

  it('carries other stage types through and treats them like llm for the common fields', () => {
    const md = extractStageMetadata(createStageConfig({ stage_id: 2, stage_type: 'tts', ...hooks }));
    expect(md.stage_type).toBe('tts');
    expect(md.prompt_expand_func).toBe('./hooks.js#expand');
    expect(md.cfg_kv_collect_func).toBeNull();
  });

  it('treats an empty stage_type as llm and empty hook strings as unset', () => {
    const md = extractStageMetadata(createStageConfig({ stage_id: 0, stage_type: '', custom_process_input_func: '' }));
    expect(md.stage_type).toBe('llm');
    expect(md.custom_process_input_func).toBeNull();
  });

  it('ignores non-string model_stage / engine_output_type', () => {
    const md = extractStageMetadata(
      createStageConfig({ stage_id: 0, engine_args: { model_stage: 1, engine_output_type: {} } }),
    );
    expect(md.model_stage).toBeNull();
    expect(md.engine_output_type).toBeNull();
  });

  it('copies lists and sampling params instead of sharing them', () => {
    const stage = createStageConfig({ stage_id: 1, engine_input_source: [0], default_sampling_params: { seed: 1 } });
    const md = extractStageMetadata(stage);
    md.engine_input_source.push(5);
    md.default_sampling_params['seed'] = 2;
    expect(stage.engine_input_source).toEqual([0]);
    expect(stage.default_sampling_params).toEqual({ seed: 1 });
  });
});
