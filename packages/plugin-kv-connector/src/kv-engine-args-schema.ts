/**
 * JSON Schema of `omni_kv_config` (a key of a stage's `engine_args` in upstream's legacy `stage_args` schema): what a user writes, plus the keys omnistage fills in
 * (documented so editors do not flag them in dumped configs). Open-ended on purpose: engines read
 * further keys that omnistage passes through untouched.
 */
export const omniKvConfigJsonSchema = {
  type: 'object',
  description: 'KV-cache transfer between stages (vllm-omni omni_kv_config).',
  properties: {
    need_send_cache: {
      type: 'boolean',
      default: false,
      description: 'This stage sends its KV cache to the next stage.',
    },
    need_recv_cache: {
      type: 'boolean',
      default: false,
      description: 'This stage receives the KV cache of an upstream stage.',
    },
    kv_transfer_criteria: {
      type: 'object',
      description: 'When the sender transfers; without it, when the request finishes.',
      properties: {
        type: {
          type: 'string',
          description: 'Trigger, e.g. prefill_finished.',
          examples: ['prefill_finished', 'special_token', 'next_step_after_special_token'],
        },
        token_id: { type: 'integer', description: 'Token that triggers the transfer (token-based criteria).' },
        stop_after_transfer: { type: 'boolean', description: 'Stop the request once its KV cache was sent.' },
      },
      required: ['type'],
      additionalProperties: true,
    },
    rank_mapping: {
      type: ['object', 'null'],
      description: 'TP sizes of the two sides; inferred from the stages when omitted (written keys win).',
      properties: {
        from_tp: { type: 'integer', minimum: 1, description: 'Tensor-parallel size of the sending stage.' },
        to_tp: { type: 'integer', minimum: 1, description: 'Tensor-parallel size of the receiving stage.' },
      },
      additionalProperties: true,
    },
    stage_id: { type: 'integer', description: 'Filled in by omnistage: this stage.' },
    engine_input_source: {
      type: 'array',
      items: { type: 'integer' },
      description: "Filled in by omnistage: the stage's engine_input_source.",
    },
    connector_config: {
      type: 'object',
      description: 'Filled in by omnistage from the edge connector: {type, role, ...extra}.',
      additionalProperties: true,
    },
    omni_from_stage: { type: ['string', 'null'], description: 'Filled in by omnistage: sending stage of the KV edge.' },
    omni_to_stage: { type: ['string', 'null'], description: 'Filled in by omnistage: receiving stage of the KV edge.' },
  },
  additionalProperties: true,
} as const;

/**
 * The part of a stage's `engine_args` schema that this plugin contributes to `omnistage schema`:
 * `omni_kv_config` ({@link omniKvConfigJsonSchema}).
 */
export const kvEngineArgsJsonSchema = {
  type: 'object',
  properties: { omni_kv_config: omniKvConfigJsonSchema },
} as const;
