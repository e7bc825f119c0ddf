import { VLLM_KNOWN_FLAGS } from './vllm-flags.js';
import type { VllmFlagSpec } from './vllm-flags.js';
import { WORKER_TYPES } from './worker-cls.js';

/** The subset of JSON Schema (draft 2020-12) this package emits. */
export interface JsonSchema {
  $schema?: string;
  title?: string;
  description?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  examples?: unknown[];
  minimum?: number;
  maximum?: number;
}

/** Every engine arg may be `null` (= "use the engine's default", dropped from the command line). */
function fromFlag(spec: VllmFlagSpec): JsonSchema {
  const description = spec.description;
  switch (spec.type) {
    case 'string|array':
      return {
        description,
        anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'null' }],
      };
    case 'array':
      return { description, type: ['array', 'null'] };
    default:
      return { description, type: [spec.type, 'null'] };
  }
}

/** vLLM-Omni / omnistage keys of an LLM stage's `engine_args` that are not vLLM flags. */
const OMNI_PROPERTIES: Record<string, JsonSchema> = {
  model_stage: {
    description: "Role of this stage inside the model, e.g. 'thinker', 'talker', 'code2wav'.",
    type: ['string', 'null'],
  },
  model_arch: {
    description: 'Model architecture class, e.g. Qwen2_5OmniForConditionalGeneration.',
    type: ['string', 'null'],
  },
  worker_type: {
    description:
      "Worker kind (case-insensitive): 'ar' (autoregressive) or 'generation' (non-AR); picks worker_cls when that is unset or 'auto'.",
    type: ['string', 'null'],
    examples: [...WORKER_TYPES],
  },
  engine_output_type: {
    description: "What the engine emits to the next stage, e.g. 'latent', 'audio', 'text'.",
    type: ['string', 'null'],
  },
  hf_config_name: {
    description: 'Sub-config of the Hugging Face config this stage loads, e.g. talker_config.',
    type: ['string', 'null'],
  },
  async_chunk: {
    description: 'Stream chunks to the next stage through the stage connector.',
    type: ['boolean', 'null'],
  },
  model_subdir: {
    description: 'Load weights from this sub-directory of the (local) model directory.',
    type: ['string', 'null'],
  },
  tokenizer_subdir: {
    description: "Load the tokenizer from this sub-directory of the model directory ('' = the model directory).",
    type: ['string', 'null'],
  },
  custom_process_next_stage_input_func: {
    description: 'Python dotted path of a hook that shapes the next stage input (opaque to omnistage).',
    type: ['string', 'null'],
  },
  omni_kv_config: {
    description: 'KV transfer between stages (filled in by @omnistage/plugin-kv-connector).',
    type: ['object', 'null'],
  },
  // Test knobs of the reference engine (src/reference/knobs.ts); vLLM never sees them.
  init_delay_ms: {
    description: 'Reference engine only: time spent "loading" before ready.',
    type: ['number', 'null'],
    minimum: 0,
  },
  token_delay_ms: {
    description: 'Reference engine only: time per generated token.',
    type: ['number', 'null'],
    minimum: 0,
  },
  fail_phase: {
    description: 'Reference engine only: exit with fail_exit_code instead of sending this message.',
    enum: ['hello', 'ready', null],
  },
  fail_exit_code: {
    description: 'Reference engine only: exit code used by fail_phase.',
    type: ['integer', 'null'],
    minimum: 0,
    maximum: 255,
  },
  hang_phase: {
    description: 'Reference engine only: never send this message (the init deadline must catch it).',
    enum: ['hello', 'ready', null],
  },
  load_ms: {
    description: 'Reference engine only: time spent "loading weights" (devices held shared with init_phases).',
    type: ['number', 'null'],
    minimum: 0,
  },
  profile_ms: {
    description: 'Reference engine only: time spent "profiling memory" (in an exclusive init window with init_phases).',
    type: ['number', 'null'],
    minimum: 0,
  },
  init_phases: {
    description: 'Reference engine only: declare init phases (docs/protocol.md "Init phases").',
    type: ['boolean', 'null'],
  },
  window_fault: {
    description: 'Reference engine only: exit (fail_exit_code) or hang inside the exclusive init window.',
    enum: ['exit', 'hang', null],
  },
};

/**
 * JSON Schema of an LLM stage's `engine_args`, for `omnistage schema` (editor completion and
 * hover docs). It describes the common vLLM engine args ({@link VLLM_KNOWN_FLAGS}) and the
 * vLLM-Omni keys; `additionalProperties` stays true because vLLM accepts many more arguments than
 * omnistage lists, and unknown keys are reported as warnings at launch instead.
 */
export const llmEngineArgsJsonSchema: JsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'LLM stage engine_args',
  description: 'Engine arguments of an llm stage: vLLM engine args plus vLLM-Omni stage keys.',
  type: 'object',
  properties: {
    ...Object.fromEntries(Object.entries(VLLM_KNOWN_FLAGS).map(([key, spec]) => [key, fromFlag(spec)])),
    ...OMNI_PROPERTIES,
  },
  additionalProperties: true,
};
