import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { VLLM_SAMPLING_PARAM_FIELDS, validateLlmSamplingParams } from '../src/sampling-params.js';
import { FILE, stageAt, thrown } from './helpers.js';

describe('validateLlmSamplingParams', () => {
  it('accepts the sampling params of the upstream fixtures', () => {
    // qwen2_5_omni_multiconnector.yaml stage 0 / 1, glm_image.yaml stage 0
    for (const default_sampling_params of [
      {
        temperature: 0.0,
        top_p: 1.0,
        top_k: -1,
        max_tokens: 2048,
        seed: 42,
        detokenize: true,
        repetition_penalty: 1.1,
      },
      {
        temperature: 0.9,
        top_p: 0.8,
        top_k: 40,
        max_tokens: 2048,
        seed: 42,
        detokenize: true,
        repetition_penalty: 1.05,
        stop_token_ids: [8294],
      },
      {
        temperature: 0.9,
        top_p: 0.75,
        top_k: 16512,
        stop_token_ids: [16385],
        max_tokens: 4353,
        seed: 42,
        detokenize: false,
      },
    ]) {
      expect(() => validateLlmSamplingParams(stageAt({ stage_id: 0, default_sampling_params }))).not.toThrow();
    }
  });

  it('accepts nullable fields as null, stop as a string or a list, extra_args, output_kind names', () => {
    const stage = stageAt({
      stage_id: 0,
      default_sampling_params: {
        seed: null,
        max_tokens: null,
        stop: 'END',
        bad_words: ['x'],
        extra_args: { cfg: 1 },
        logit_bias: { 42: -1.5 },
        output_kind: 'final_only',
        structured_outputs: { regex: 'a+' },
        guided_decoding: null,
        best_of: 2,
        logits_processors: [],
      },
    });
    expect(() => validateLlmSamplingParams(stage)).not.toThrow();
    expect(() =>
      validateLlmSamplingParams(
        stageAt({ stage_id: 0, default_sampling_params: { stop: ['a', 'b'], output_kind: 2 } }),
      ),
    ).not.toThrow();
  });

  it('knows the core vLLM SamplingParams fields', () => {
    for (const f of [
      'n',
      'presence_penalty',
      'frequency_penalty',
      'repetition_penalty',
      'temperature',
      'top_p',
      'top_k',
      'min_p',
      'seed',
      'stop',
      'stop_token_ids',
      'ignore_eos',
      'max_tokens',
      'min_tokens',
      'logprobs',
      'prompt_logprobs',
      'detokenize',
      'skip_special_tokens',
      'spaces_between_special_tokens',
      'include_stop_str_in_output',
      'output_kind',
      'structured_outputs',
      'logit_bias',
      'allowed_token_ids',
      'extra_args',
      'bad_words',
    ]) {
      expect(VLLM_SAMPLING_PARAM_FIELDS[f], f).toBeDefined();
    }
  });

  it('rejects an unknown key at its location with a did-you-mean hint', () => {
    const stage = stageAt(
      { stage_id: 1, default_sampling_params: { temperature: 0.9, temprature: 0.5 } },
      { 'default_sampling_params.temprature': [31, 7] },
    );
    const err = thrown(() => validateLlmSamplingParams(stage)) as OmniError;
    expect(err).toBeInstanceOf(OmniError);
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toBe('Stage 1: default_sampling_params has an unknown key `temprature`.');
    expect(err.location).toEqual({ file: FILE, line: 31, col: 7 });
    expect(err.hint).toBe('Did you mean `temperature`?');
    expect(err.context).toMatchObject({ stage_id: 1, key: 'temprature' });
  });

  it('suggests max_tokens for max_new_tokens and falls back to a list when nothing is close', () => {
    const near = thrown(() =>
      validateLlmSamplingParams(stageAt({ stage_id: 0, default_sampling_params: { max_new_tokens: 5 } })),
    ) as OmniError;
    expect(near.hint).toBe('Did you mean `max_tokens`?');
    const far = thrown(() =>
      validateLlmSamplingParams(stageAt({ stage_id: 0, default_sampling_params: { num_inference_steps: 50 } })),
    ) as OmniError;
    expect(far.hint).not.toContain('Did you mean');
    expect(far.hint).toContain('temperature');
  });

  it('points at the parent map when the key itself has no recorded location', () => {
    const stage = stageAt(
      { stage_id: 0, default_sampling_params: { guidance_scale: 1 } },
      { default_sampling_params: [20, 5] },
    );
    const err = thrown(() => validateLlmSamplingParams(stage)) as OmniError;
    expect(err.location).toEqual({ file: FILE, line: 20, col: 5 });
  });

  it.each([
    ['temperature', 'hot'],
    ['temperature', null],
    ['top_k', 1.5],
    ['max_tokens', '2048'],
    ['n', true],
    ['detokenize', 'True'],
    ['stop_token_ids', [1, 'x']],
    ['stop_token_ids', 5],
    ['stop', [1]],
    ['extra_args', [1]],
    ['output_kind', 'SOMETIMES'],
    ['output_kind', 3],
  ])('rejects %s = %j by type', (key, value) => {
    const stage = stageAt(
      { stage_id: 2, default_sampling_params: { [key]: value } },
      { [`default_sampling_params.${key}`]: [40, 9] },
    );
    const err = thrown(() => validateLlmSamplingParams(stage)) as OmniError;
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toContain(`'${key}' must be`);
    expect(err.location).toEqual({ file: FILE, line: 40, col: 9 });
    expect(err.hint).toBeTruthy();
  });

  it('accepts an empty map', () => {
    expect(() => validateLlmSamplingParams(stageAt({ stage_id: 0 }))).not.toThrow();
  });
});

describe('error columns', () => {
  it('an unknown sampling key read from YAML points at the key, not at its value', async () => {
    const { loadPipelineConfig } = await import('@omnistage/core');
    const text = 'stage_args:\n  - stage_id: 0\n    default_sampling_params:\n      temprature: 0.7\n';
    const config = await loadPipelineConfig({ text, path: '/cfg/p.yaml' });
    const err = thrown(() => validateLlmSamplingParams(config.stages[0]!)) as OmniError;
    expect(err.location).toEqual({ file: '/cfg/p.yaml', line: 4, col: 7 });
  });
});
