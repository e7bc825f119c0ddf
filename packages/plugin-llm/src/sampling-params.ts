import { invalidValue, unknownKey } from '@omnistage/core';
import type { StageConfig } from '@omnistage/core';

/**
 * Value shapes the sampling-parameter check knows. `?` suffix = `null` allowed (the field is
 * `X | None` in vLLM).
 */
export type SamplingFieldType =
  | 'int'
  | 'int?'
  | 'number'
  | 'bool'
  | 'bool?'
  | 'string|string[]?'
  | 'string[]?'
  | 'int[]?'
  | 'list?'
  | 'object?'
  | 'output_kind';

/**
 * Fields of vLLM's `SamplingParams` (`vllm/sampling_params.py`) that a stage's
 * `default_sampling_params` may set, with the shape each one takes.
 *
 * The list is the union over the vLLM releases vLLM-Omni has been built against, so a config that
 * worked on one of them is not rejected here: fields removed later (`best_of`,
 * `logits_processors`, `truncate_prompt_tokens`, `guided_decoding`) stay next to their successors
 * (`structured_outputs`) and to fields added later (`flat_logprobs`, `logprob_token_ids`,
 * `thinking_token_budget`, ...). Internal fields set in `__post_init__` (`_eos_token_id`, ...) are
 * not user input and are not listed.
 */
export const VLLM_SAMPLING_PARAM_FIELDS: Readonly<Record<string, SamplingFieldType>> = {
  n: 'int',
  best_of: 'int?',
  presence_penalty: 'number',
  frequency_penalty: 'number',
  repetition_penalty: 'number',
  temperature: 'number',
  top_p: 'number',
  top_k: 'int',
  min_p: 'number',
  seed: 'int?',
  stop: 'string|string[]?',
  stop_token_ids: 'int[]?',
  bad_words: 'string[]?',
  ignore_eos: 'bool',
  max_tokens: 'int?',
  min_tokens: 'int',
  logprobs: 'int?',
  prompt_logprobs: 'int?',
  prompt_logprob_token_ids: 'int[]?',
  prompt_logprob_start: 'int?',
  logprob_token_ids: 'int[]?',
  flat_logprobs: 'bool',
  detokenize: 'bool',
  skip_special_tokens: 'bool',
  spaces_between_special_tokens: 'bool',
  include_stop_str_in_output: 'bool',
  logits_processors: 'list?',
  truncate_prompt_tokens: 'int?',
  output_kind: 'output_kind',
  stream_interval: 'int?',
  skip_clone: 'bool',
  output_text_buffer_length: 'int',
  guided_decoding: 'object?',
  structured_outputs: 'object?',
  logit_bias: 'object?',
  allowed_token_ids: 'int[]?',
  extra_args: 'object?',
  skip_reading_prefix_cache: 'bool?',
  thinking_token_budget: 'int?',
  repetition_detection: 'object?',
  routed_experts_prompt_start: 'int',
  trace_decode_token_ids: 'int[]?',
};

/** `RequestOutputKind` members, by name and by value. */
const OUTPUT_KINDS = ['CUMULATIVE', 'DELTA', 'FINAL_ONLY'];

const isInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v);
const isPlainObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);

const EXPECTED: Readonly<Record<SamplingFieldType, string>> = {
  int: 'an integer',
  'int?': 'an integer or null',
  number: 'a number',
  bool: 'true or false',
  'bool?': 'true, false or null',
  'string|string[]?': 'a string, a list of strings or null',
  'string[]?': 'a list of strings or null',
  'int[]?': 'a list of integers or null',
  'list?': 'a list or null',
  'object?': 'a mapping or null',
  output_kind: `one of ${OUTPUT_KINDS.join(', ')} (or 0, 1, 2)`,
};

/** Returns a description of what was expected when `value` does not fit `type`, else undefined. */
function mismatch(type: SamplingFieldType, value: unknown): string | undefined {
  const nullable = type.endsWith('?');
  if (value === null) return nullable ? undefined : EXPECTED[type];
  let ok: boolean;
  switch (type) {
    case 'int':
    case 'int?':
      ok = isInt(value);
      break;
    case 'number':
      ok = typeof value === 'number' && Number.isFinite(value);
      break;
    case 'bool':
    case 'bool?':
      ok = typeof value === 'boolean';
      break;
    case 'string|string[]?':
      ok = typeof value === 'string' || (Array.isArray(value) && value.every((x) => typeof x === 'string'));
      break;
    case 'string[]?':
      ok = Array.isArray(value) && value.every((x) => typeof x === 'string');
      break;
    case 'int[]?':
      ok = Array.isArray(value) && value.every(isInt);
      break;
    case 'list?':
      ok = Array.isArray(value);
      break;
    case 'object?':
      ok = isPlainObject(value);
      break;
    case 'output_kind':
      ok =
        (isInt(value) && (value as number) >= 0 && (value as number) < OUTPUT_KINDS.length) ||
        (typeof value === 'string' && OUTPUT_KINDS.includes(value.toUpperCase()));
      break;
  }
  return ok ? undefined : EXPECTED[type];
}

/**
 * Validates a stage's `default_sampling_params` against vLLM's `SamplingParams` fields
 * ({@link VLLM_SAMPLING_PARAM_FIELDS}). Upstream constructs `SamplingParams(**d)` at init, so an
 * unknown key fails the whole pipeline late, inside the engine; here it is caught at load time.
 *
 * Throws `OMNI_CONFIG_INVALID` at `default_sampling_params.<key>`:
 * - for an unknown key, with a did-you-mean hint when a field is close;
 * - for a value of the wrong basic type (integer, number, boolean, list of ..., mapping).
 *   vLLM's own range checks (`temperature >= 0`, ...) are left to vLLM.
 *
 * Meant for `llm` stages only (upstream builds `SamplingParams` only when `stage_type == "llm"`;
 * other stage types get diffusion sampling params), so callers decide when to call it.
 */
export function validateLlmSamplingParams(stage: StageConfig): void {
  for (const [key, value] of Object.entries(stage.default_sampling_params)) {
    const path = `default_sampling_params.${key}`;
    // Keys are data: `constructor` or `toString` must not find Object.prototype members.
    const type = Object.hasOwn(VLLM_SAMPLING_PARAM_FIELDS, key) ? VLLM_SAMPLING_PARAM_FIELDS[key] : undefined;
    const where = { location: stage.locations.at(path), context: { stage_id: stage.stage_id, key } };
    if (type === undefined) {
      // Upstream builds SamplingParams(**d): an unknown field is a config error there too.
      throw unknownKey({
        ...where,
        location: stage.locations.keyAt(path),
        code: 'OMNI_CONFIG_INVALID',
        what: `Stage ${stage.stage_id}: default_sampling_params`,
        key,
        known: Object.keys(VLLM_SAMPLING_PARAM_FIELDS),
      });
    }
    const expected = mismatch(type, value);
    if (expected !== undefined) {
      throw invalidValue({
        ...where,
        what: `Stage ${stage.stage_id}: sampling parameter '${key}'`,
        expected,
        got: value,
        hint: `Fix default_sampling_params.${key}; vLLM's SamplingParams.${key} expects ${expected}.`,
      });
    }
  }
}
