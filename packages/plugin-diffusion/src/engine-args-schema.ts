import { DIFFUSION_PARALLEL_FIELDS } from './parallel-config-fields.js';
import type { DiffusionParallelFieldSpec } from './parallel-config-fields.js';

/** JSON Schema of one `parallel_config` field, from its entry in the shared table. */
function parallelFieldSchema(spec: DiffusionParallelFieldSpec): Record<string, unknown> {
  switch (spec.kind) {
    case 'bool':
      return { type: 'boolean', default: spec.default, description: spec.description };
    case 'enum':
      return { type: 'string', enum: [...spec.values], default: spec.default, description: spec.description };
    case 'int': {
      const base: Record<string, unknown> = {
        type: spec.nullable ? ['integer', 'null'] : 'integer',
        description: spec.description,
      };
      if (spec.default !== null) base.default = spec.default;
      if (spec.allowed) return { ...base, enum: [...spec.allowed] };
      if (spec.sentinels && spec.sentinels.length > 0) {
        return { ...base, anyOf: [{ minimum: spec.min }, { enum: [...spec.sentinels] }] };
      }
      return { ...base, minimum: spec.min };
    }
  }
}

const attentionSpecSchema = {
  anyOf: [
    { type: 'string', description: 'Backend registry name, e.g. FLASH_ATTN, SDPA; "auto" = platform default.' },
    {
      type: 'object',
      properties: {
        backend: { type: 'string' },
        extra: { type: 'object', additionalProperties: true, description: 'Backend-specific options.' },
      },
      required: ['backend'],
      additionalProperties: false,
    },
  ],
};

/**
 * JSON Schema (draft-07 compatible) of a diffusion stage's `engine_args`, contributed to
 * `omnistage schema` for editor completion. It describes the keys this plugin interprets
 * (`parallel_config`, `diffusion_attention_config`) and common diffusion engine keys;
 * `additionalProperties: true` because engines accept many more, filtered later against their
 * own argument lists. `parallel_config` itself is closed, as upstream rejects unknown keys there.
 */
export const diffusionEngineArgsJsonSchema: Record<string, unknown> = {
  type: 'object',
  title: 'Diffusion stage engine_args',
  additionalProperties: true,
  properties: {
    model: { type: 'string', description: 'Model path or Hugging Face id (the CLI --model wins).' },
    model_class_name: { type: 'string', description: 'Pipeline class to load, when not inferred from the model.' },
    model_stage: { type: 'string', description: 'Stage role inside the model, e.g. "diffusion", "dit".' },
    dtype: { type: 'string', description: 'Weight dtype, e.g. "bfloat16", "float16", "auto".' },
    trust_remote_code: { type: 'boolean' },
    revision: { type: ['string', 'null'] },
    enforce_eager: { type: 'boolean', description: 'Disable compilation / graph capture.' },
    distributed_executor_backend: { type: 'string', default: 'mp' },
    parallel_config: {
      type: 'object',
      description: 'Diffusion parallelism; the product of the degrees is the devices needed per replica.',
      properties: {
        ...Object.fromEntries(
          Object.entries(DIFFUSION_PARALLEL_FIELDS).map(([key, spec]) => [key, parallelFieldSchema(spec)]),
        ),
        world_size: {
          type: 'integer',
          description: 'Devices per replica, overriding the product of the degrees (values below 1 mean 1).',
        },
      },
      additionalProperties: false,
    },
    diffusion_attention_config: {
      description: 'Attention backends: a backend name (the default) or { default, per_role }.',
      anyOf: [
        { type: 'string' },
        { type: 'null' },
        {
          type: 'object',
          properties: {
            default: { anyOf: [...attentionSpecSchema.anyOf, { type: 'null' }] },
            per_role: {
              type: 'object',
              description: 'Role (e.g. self, cross, or nested model.role) → backend.',
              additionalProperties: true,
            },
          },
          additionalProperties: false,
        },
      ],
    },
    cache_backend: { type: 'string', description: 'Step cache: "none", "tea_cache", "cache_dit", …', default: 'none' },
    cache_config: { type: ['object', 'string'], description: 'Options of the cache backend (a mapping or JSON text).' },
    enable_cpu_offload: { type: 'boolean' },
    vae_use_slicing: { type: 'boolean' },
    vae_use_tiling: { type: 'boolean' },
    boundary_ratio: { type: ['number', 'null'], minimum: 0, maximum: 1 },
    flow_shift: { type: ['number', 'null'] },
    lora_path: { type: ['string', 'null'] },
    lora_scale: { type: 'number' },
    max_num_seqs: { type: 'integer', minimum: 1, description: 'Requests batched per diffusion step.' },
    omni_kv_config: {
      type: 'object',
      additionalProperties: true,
      description: 'KV transfer settings (set by the KV plugin).',
    },
  },
};
