import { LocationIndex, createStageConfig } from '@omnistage/core/testing';
import { describe, expect, it } from 'vitest';
import { DIFFUSION_SAMPLING_PARAM_KEYS, validateDiffusionSamplingParams } from '../src/sampling-params.js';
import { errorOf } from './error-of.js';

/** Every key of default_sampling_params gets its own line, so locations identify the key. */
function stage(params: Record<string, unknown>) {
  const locations = new LocationIndex({ file: 'pipe.yaml', line: 1, col: 1 });
  locations.set('default_sampling_params', { file: 'pipe.yaml', line: 20, col: 5 });
  Object.keys(params).forEach((key, i) =>
    locations.set(`default_sampling_params.${key}`, { file: 'pipe.yaml', line: 21 + i, col: 7 }),
  );
  return createStageConfig({ stage_id: 1, stage_type: 'diffusion', default_sampling_params: params, locations });
}

describe('validateDiffusionSamplingParams', () => {
  it('accepts the defaults shipped upstream (glm_image, bagel) and an empty map', () => {
    expect(() =>
      validateDiffusionSamplingParams(
        stage({ seed: 42, num_inference_steps: 50, guidance_scale: 1.5, height: 1024, width: 1024 }),
      ),
    ).not.toThrow();
    expect(() => validateDiffusionSamplingParams(stage({ seed: 52 }))).not.toThrow();
    expect(() => validateDiffusionSamplingParams(stage({}))).not.toThrow();
  });

  it('accepts the other documented keys with sensible values', () => {
    const params = {
      true_cfg_scale: 4,
      guidance_scale_2: 6,
      negative_prompt: 'blurry',
      num_outputs_per_prompt: 2,
      num_frames: 81,
      fps: 16,
      generator_device: 'cpu',
      max_sequence_length: 512,
      output_type: 'pil',
      eta: 0,
      sigmas: [1, 0.5, 0],
      timesteps: [999, 500, 1],
      strength: 0.8,
      lora_request: { lora_name: 'x', lora_int_id: 1, lora_path: '/l' },
      extra_args: { noise_level: 1 },
      seed: null,
      height: null,
    };
    expect(() => validateDiffusionSamplingParams(stage(params))).not.toThrow();
    for (const key of ['num_inference_steps', 'guidance_scale', 'negative_prompt', 'extra_args', 'lora_request']) {
      expect(DIFFUSION_SAMPLING_PARAM_KEYS).toContain(key);
    }
  });

  it('rejects an unknown key at its location with a did-you-mean', () => {
    const err = errorOf(() => validateDiffusionSamplingParams(stage({ seed: 1, num_inference_step: 30 })));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toContain('default_sampling_params.num_inference_step is not a diffusion sampling parameter');
    expect(err.location).toEqual({ file: 'pipe.yaml', line: 22, col: 7 });
    expect(err.hint).toBe('did you mean "num_inference_steps"?');
    expect(err.context.stage_id).toBe(1);
  });

  it('lists the known keys when nothing is close', () => {
    const err = errorOf(() => validateDiffusionSamplingParams(stage({ zzzzzz: 1 })));
    expect(err.hint).toContain('num_inference_steps');
  });

  it('explains LLM keys and engine-internal fields', () => {
    expect(errorOf(() => validateDiffusionSamplingParams(stage({ temperature: 0.9 }))).hint).toContain(
      'LLM sampling parameter',
    );
    expect(errorOf(() => validateDiffusionSamplingParams(stage({ latents: [] }))).hint).toContain(
      'filled in by the diffusion engine',
    );
  });

  it('rejects a height or width that is not a positive multiple of 8', () => {
    const err = errorOf(() => validateDiffusionSamplingParams(stage({ width: 512, height: 1001 })));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toContain('default_sampling_params.height must be a positive multiple of 8, got 1001');
    expect(err.location).toEqual({ file: 'pipe.yaml', line: 22, col: 7 });
    expect(err.hint).toContain('use 1000 or 1008');
    for (const bad of [0, -8, 4, 512.5, '512', true]) {
      expect(() => validateDiffusionSamplingParams(stage({ width: bad }))).toThrow(
        /width must be a positive multiple of 8/,
      );
    }
  });

  it('checks steps, guidance and seed types', () => {
    for (const bad of [0, 2.5, '30', null]) {
      expect(() => validateDiffusionSamplingParams(stage({ num_inference_steps: bad }))).toThrow(/num_inference_steps/);
    }
    expect(() => validateDiffusionSamplingParams(stage({ guidance_scale: 'high' }))).toThrow(
      /guidance_scale must be a number ≥ 0, got "high" \(a string\)/,
    );
    expect(() => validateDiffusionSamplingParams(stage({ guidance_scale: Number.NaN }))).toThrow(/guidance_scale/);
    expect(() => validateDiffusionSamplingParams(stage({ seed: 1.5 }))).toThrow(/seed must be an integer/);
    expect(() => validateDiffusionSamplingParams(stage({ seed: -3 }))).not.toThrow();
    expect(() => validateDiffusionSamplingParams(stage({ strength: 1.5 }))).toThrow(
      /strength must be a number from 0 to 1/,
    );
    expect(() => validateDiffusionSamplingParams(stage({ sigmas: [1, 'a'] }))).toThrow(
      /sigmas must be a list of numbers/,
    );
    expect(() => validateDiffusionSamplingParams(stage({ extra_args: [] }))).toThrow(/extra_args must be a mapping/);
  });

  it('rejects a default_sampling_params that is not a mapping', () => {
    const s = stage({});
    (s as { default_sampling_params: unknown }).default_sampling_params = [1];
    const err = errorOf(() => validateDiffusionSamplingParams(s));
    expect(err.location).toEqual({ file: 'pipe.yaml', line: 20, col: 5 });
  });
});
