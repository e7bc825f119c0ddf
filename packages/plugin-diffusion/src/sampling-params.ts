import { OmniError } from '@omnistage/core';
import type { SourceLocation, StageConfig } from '@omnistage/core';
import { unknownKeyHint } from './unknown-key-hint.js';
import { UNKNOWN_KEY_CODE, describeValue, isFiniteNumber, isInt, isPlainObject } from './value-checks.js';

/** How one diffusion sampling parameter is typed. `nullable`: YAML `null` means "unset". */
type SamplingParamSpec =
  | { kind: 'int'; min?: number; multipleOf?: number; nullable?: boolean }
  | { kind: 'number'; min?: number; max?: number; nullable?: boolean }
  | { kind: 'number-or-list'; nullable?: boolean }
  | { kind: 'number-list'; nullable?: boolean }
  | { kind: 'bool' }
  | { kind: 'string'; nullable?: boolean }
  | { kind: 'string-or-list'; nullable?: boolean }
  | { kind: 'mapping'; nullable?: boolean };

/**
 * Settable fields of upstream `OmniDiffusionSamplingParams` (`vllm_omni/inputs/data.py`) that make
 * sense as stage defaults, with their types. Fields the engine fills in while it runs (latents,
 * generators, KV caches, …) are in {@link RUNTIME_ONLY_FIELDS} instead. A few keys are from later
 * upstream revisions (`frame_rate`, `strength`, `output_type`, `decode_*`, `quality`) or are prompt
 * fields upstream (`negative_prompt`) accepted here as defaults.
 */
const SAMPLING_PARAMS = {
  num_inference_steps: { kind: 'int', min: 1 },
  guidance_scale: { kind: 'number', min: 0 },
  guidance_scale_2: { kind: 'number', min: 0, nullable: true },
  true_cfg_scale: { kind: 'number', min: 0, nullable: true },
  guidance_rescale: { kind: 'number', min: 0 },
  do_classifier_free_guidance: { kind: 'bool' },
  cfg_normalize: { kind: 'bool' },
  height: { kind: 'int', min: 8, multipleOf: 8, nullable: true },
  width: { kind: 'int', min: 8, multipleOf: 8, nullable: true },
  seed: { kind: 'int', nullable: true },
  negative_prompt: { kind: 'string-or-list', nullable: true },
  num_outputs_per_prompt: { kind: 'int', min: 1 },
  num_frames: { kind: 'int', min: 1 },
  num_frames_round_down: { kind: 'bool' },
  fps: { kind: 'int', min: 1, nullable: true },
  frame_rate: { kind: 'number', min: 0, nullable: true },
  generator_device: { kind: 'string', nullable: true },
  max_sequence_length: { kind: 'int', min: 1, nullable: true },
  prompt_template: { kind: 'mapping', nullable: true },
  output_type: { kind: 'string', nullable: true },
  eta: { kind: 'number', min: 0 },
  sigmas: { kind: 'number-list', nullable: true },
  timesteps: { kind: 'number-list', nullable: true },
  strength: { kind: 'number', min: 0, max: 1, nullable: true },
  boundary_ratio: { kind: 'number', min: 0, max: 1, nullable: true },
  decode_timestep: { kind: 'number-or-list', nullable: true },
  decode_noise_scale: { kind: 'number-or-list', nullable: true },
  layers: { kind: 'int', min: 1 },
  resolution: { kind: 'int', min: 1 },
  use_en_prompt: { kind: 'bool' },
  quality: { kind: 'string', nullable: true },
  lora_request: { kind: 'mapping', nullable: true },
  lora_scale: { kind: 'number' },
  extra_args: { kind: 'mapping' },
  extra_step_kwargs: { kind: 'mapping' },
  return_trajectory_latents: { kind: 'bool' },
  return_trajectory_decoded: { kind: 'bool' },
  save_output: { kind: 'bool' },
  return_frames: { kind: 'bool' },
  VSA_sparsity: { kind: 'number', min: 0, max: 1 },
  profile: { kind: 'bool' },
  num_profiled_timesteps: { kind: 'int', min: 1 },
  debug: { kind: 'bool' },
} as const satisfies Record<string, SamplingParamSpec>;

/** Keys accepted in a diffusion stage's `default_sampling_params`. */
export const DIFFUSION_SAMPLING_PARAM_KEYS: readonly string[] = Object.keys(SAMPLING_PARAMS);

/** Upstream dataclass fields that the engine sets while it runs; never a stage default. */
const RUNTIME_ONLY_FIELDS: ReadonlySet<string> = new Set([
  'generator',
  'latents',
  'raw_latent_shape',
  'noise_pred',
  'image_latent',
  'height_latents',
  'width_latents',
  'timestep',
  'step_index',
  'n_tokens',
  'past_key_values',
  'kv_metadata',
  'need_kv_receive',
  'modules',
  'trajectory_timesteps',
  'trajectory_latents',
  'output',
  'is_prompt_processed',
  'guidance_scale_provided',
  'height_not_provided',
  'width_not_provided',
  'STA_param',
  'is_cfg_negative',
  'mask_search_final_result_pos',
  'mask_search_final_result_neg',
]);

/** vLLM `SamplingParams` keys: on a diffusion stage they usually mean a wrong `stage_type`. */
const LLM_ONLY_FIELDS: ReadonlySet<string> = new Set([
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'max_tokens',
  'min_tokens',
  'repetition_penalty',
  'presence_penalty',
  'frequency_penalty',
  'detokenize',
  'stop',
  'stop_token_ids',
  'logprobs',
  'n',
]);

/**
 * Checks a diffusion stage's `default_sampling_params` the way upstream's
 * `OmniDiffusionSamplingParams(**d)` would when upstream's `extract_stage_metadata` builds it (unknown keys raise), plus value
 * checks upstream leaves to the model: integers where counts are meant, `height`/`width` positive
 * multiples of 8 (the VAE downsamples by 8), `num_inference_steps` ≥ 1, guidance a number, `seed`
 * an integer. Throws `OMNI_CONFIG_INVALID` at `default_sampling_params.<key>` with a hint (a
 * did-you-mean for unknown keys).
 */
export function validateDiffusionSamplingParams(stage: StageConfig): void {
  const params: unknown = stage.default_sampling_params;
  const context = { stage_id: stage.stage_id, stage_idx: stage.stage_idx };
  const at = (key: string): SourceLocation => stage.locations.at(`default_sampling_params.${key}`);
  if (params === undefined || params === null) return;
  if (!isPlainObject(params)) {
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `default_sampling_params of stage ${stage.stage_id} must be a mapping, got ${describeValue(params)}`,
      {
        location: stage.locations.at('default_sampling_params'),
        hint: 'write it as a mapping, e.g. `default_sampling_params: { num_inference_steps: 30 }`',
        context,
      },
    );
  }

  for (const [key, value] of Object.entries(params)) {
    if (!Object.hasOwn(SAMPLING_PARAMS, key)) {
      throw new OmniError(
        UNKNOWN_KEY_CODE,
        `default_sampling_params.${key} is not a diffusion sampling parameter (stage ${stage.stage_id})`,
        {
          location: stage.locations.keyAt(`default_sampling_params.${key}`),
          hint: unknownSamplingKeyHint(key),
          context,
        },
      );
    }
    const problem = checkValue(key, SAMPLING_PARAMS[key as keyof typeof SAMPLING_PARAMS], value);
    if (problem !== undefined) {
      throw new OmniError(
        'OMNI_CONFIG_INVALID',
        `default_sampling_params.${key} ${problem.message}, got ${describeValue(value)} (stage ${stage.stage_id})`,
        {
          location: at(key),
          hint: problem.hint,
          context,
        },
      );
    }
  }
}

function unknownSamplingKeyHint(key: string): string {
  if (RUNTIME_ONLY_FIELDS.has(key))
    return `${key} is filled in by the diffusion engine while it runs; it cannot be a default, remove it`;
  if (LLM_ONLY_FIELDS.has(key)) {
    return `${key} is an LLM sampling parameter; remove it, or set stage_type: llm if this stage is an LLM`;
  }
  return unknownKeyHint(key, DIFFUSION_SAMPLING_PARAM_KEYS, 'default_sampling_params');
}

/** The problem with `value` for a field typed `spec`, or undefined when it is fine. */
function checkValue(
  key: string,
  spec: SamplingParamSpec,
  value: unknown,
): { message: string; hint: string } | undefined {
  if (value === null) {
    return 'nullable' in spec && spec.nullable
      ? undefined
      : { message: 'cannot be null', hint: `remove ${key} to use the engine default` };
  }
  switch (spec.kind) {
    case 'int': {
      const min = spec.min;
      const range = min === undefined ? 'an integer' : min === 1 ? 'a positive integer' : `an integer ≥ ${min}`;
      const what = spec.multipleOf === undefined ? range : `a positive multiple of ${spec.multipleOf}`;
      if (!isInt(value) || (min !== undefined && value < min))
        return { message: `must be ${what}`, hint: `write ${key} as ${what}, unquoted` };
      if (spec.multipleOf !== undefined && value % spec.multipleOf !== 0) {
        const m = spec.multipleOf;
        const down = Math.max(m, Math.floor(value / m) * m);
        const up = Math.ceil(value / m) * m;
        return {
          message: `must be ${what}`,
          hint: `the image is encoded in ${m}×${m} latent patches; use ${down} or ${up}`,
        };
      }
      return undefined;
    }
    case 'number': {
      const bounds =
        spec.min !== undefined && spec.max !== undefined
          ? `a number from ${spec.min} to ${spec.max}`
          : spec.min !== undefined
            ? `a number ≥ ${spec.min}`
            : 'a number';
      if (
        !isFiniteNumber(value) ||
        (spec.min !== undefined && value < spec.min) ||
        (spec.max !== undefined && value > spec.max)
      ) {
        return { message: `must be ${bounds}`, hint: `write ${key} as ${bounds}, unquoted` };
      }
      return undefined;
    }
    case 'number-list':
      return Array.isArray(value) && value.every(isFiniteNumber)
        ? undefined
        : { message: 'must be a list of numbers', hint: `write ${key} as a list, e.g. [1.0, 0.5, 0.0]` };
    case 'number-or-list':
      return isFiniteNumber(value) || (Array.isArray(value) && value.every(isFiniteNumber))
        ? undefined
        : { message: 'must be a number or a list of numbers', hint: `write ${key} as a number or a list of numbers` };
    case 'bool':
      return typeof value === 'boolean'
        ? undefined
        : { message: 'must be true or false', hint: `write ${key}: true or ${key}: false` };
    case 'string':
      return typeof value === 'string' ? undefined : { message: 'must be a string', hint: `quote the value of ${key}` };
    case 'string-or-list':
      return typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'))
        ? undefined
        : { message: 'must be a string or a list of strings', hint: `write ${key} as text, or a list of texts` };
    case 'mapping':
      return isPlainObject(value)
        ? undefined
        : { message: 'must be a mapping', hint: `write ${key} as a mapping of keys to values` };
  }
}
