/**
 * zod schemas of the pipeline file as written (input side): the legacy `stage_args` schema, the
 * deploy `stages` schema and `--stage-overrides`. Maps are strict so a misspelt key is an error,
 * except where upstream passes keys through to the engine (`engine_args`, deploy flat fields).
 * Defaults are applied by the normaliser, not here, so the JSON Schema shows what users may write.
 */
import * as z from 'zod';

/** Platforms a `platforms:` section can target (mirrors `PlatformName` of the planner). */
export const PLATFORM_NAMES = ['cuda', 'rocm', 'npu', 'xpu', 'cpu'] as const;

const anyMap = z.record(z.string(), z.unknown());

/** A key upstream still ships but ignores: accepted, reported as `OMNI_WARN_DEPRECATED_KEY`. */
function deprecatedKey(description: string): z.ZodOptional<z.ZodUnknown> {
  return z.unknown().optional().meta({ deprecated: true, description });
}

const devicesSchema = z.union([z.string(), z.int().min(0)]).meta({
  description: 'Logical device indices into the visible devices, e.g. "0,1". An integer means that one device.',
});

const envSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).meta({
  description:
    'Environment variables for this stage\'s replicas; values are stringified like Python str() (true → "True").',
});

const restartPolicyName = z.enum(['never', 'on-failure']);

/** Upper bound of `max_inflight_per_replica` (a larger number is a typo, not a bound). */
export const MAX_INFLIGHT_LIMIT = 1_000_000;

const maxInflightSchema = z.int().min(1).max(MAX_INFLIGHT_LIMIT).meta({
  description:
    "Most requests one replica of this stage serves at once (omnistage extension); more wait in a first-come-first-served queue at the stage. Default 64, or the stage's max_num_seqs when larger.",
});

/** Bounds of the liveness settings (seconds). */
export const LIVENESS_LIMITS = {
  minIntervalS: 0.05,
  maxIntervalS: 3600,
  maxTimeoutS: 86_400,
  maxFailures: 100,
} as const;

const intervalSchema = (what: string) =>
  z.number().min(LIVENESS_LIMITS.minIntervalS).max(LIVENESS_LIMITS.maxIntervalS).meta({ description: what });

/** Pipeline-wide liveness settings (omnistage extension), in the top-level `runtime:` block. */
export const livenessFields = {
  heartbeat_interval_s: intervalSchema(
    'Seconds between the heartbeats replicas send over the control channel (default 2).',
  ).optional(),
  heartbeat_timeout_s: z
    .number()
    .gt(0)
    .max(LIVENESS_LIMITS.maxTimeoutS)
    .meta({
      description:
        'Silence after which a replica that sends heartbeats is taken out of rotation (default 30; must exceed heartbeat_interval_s).',
    })
    .optional(),
  readiness_interval_s: intervalSchema(
    'Seconds between readiness re-checks of HTTP replicas (GET their health endpoint; default 5).',
  ).optional(),
  readiness_failures: z
    .int()
    .min(1)
    .max(LIVENESS_LIMITS.maxFailures)
    .meta({
      description:
        'Consecutive failed readiness checks that take an HTTP replica out of rotation (default 3); it comes back when it answers again.',
    })
    .optional(),
};

/** A map, or the docker-compose shorthand: the policy name alone (`restart: on-failure`). */
export const restartSchema = z
  .union([
    restartPolicyName,
    z.strictObject({
      policy: restartPolicyName.optional(),
      max_restarts: z.int().min(0).optional(),
      backoff_ms: z.int().min(0).optional(),
    }),
  ])
  .meta({
    description:
      'What to do when a replica dies after it was ready (omnistage extension): `on-failure`, `never`, or a map with policy, max_restarts, backoff_ms.',
  });

export const connectorSpecSchema = z
  .strictObject({
    name: z.string().min(1).meta({ description: 'Connector class, e.g. SharedMemoryConnector.' }),
    extra: anyMap.nullable().optional(),
  })
  .meta({ description: 'A transfer connector: class name plus its options.' });

const connectorRefSchema = z.union([z.string().min(1), connectorSpecSchema]);

const connectorMapSchema = z
  .record(z.string(), connectorRefSchema)
  .meta({ description: 'from_stage_<id> / to_stage_<id> → a connector name from `connectors` or an inline spec.' });

export const edgeSchema = z.strictObject({
  from: z.int(),
  to: z.int(),
  window_size: z.int().optional(),
  max_inflight: z.int().optional(),
});

export const modeSchema = z.strictObject({
  mode: z.string().min(1),
  stages: z.union([z.int(), z.array(z.int())]),
});

export const pluginRefSchema = z.union([
  z.string().min(1).meta({ description: 'npm package name or module path relative to this file.' }),
  z
    .strictObject({
      name: z.string().min(1).optional(),
      path: z.string().min(1).optional(),
      options: anyMap.nullable().optional(),
    })
    .superRefine((v, ctx) => {
      if ((v.name === undefined) === (v.path === undefined)) {
        ctx.addIssue({
          code: 'custom',
          message: 'A plugin entry needs exactly one of `name` (npm package) or `path` (module file).',
        });
      }
    }),
]);

const hookSchema = z.string().min(1).nullable().optional();

// ---------------------------------------------------------------- legacy (`stage_args`)

export const legacyRuntimeSchema = z.strictObject({
  process: z.boolean().optional(),
  devices: devicesSchema.nullable().optional(),
  num_replicas: z.int().min(0).optional(),
  min_ready: z.int().min(1).optional().meta({
    description:
      'Head mode: live replicas this stage needs before the pipeline is ready (default 1; --min-ready overrides).',
  }),
  env: envSchema.nullable().optional(),
  requires_multimodal_data: z.boolean().optional(),
  restart: restartSchema.optional(),
  max_inflight_per_replica: maxInflightSchema.optional(),
  max_batch_size: deprecatedKey('Ignored since upstream #1851; use engine_args.max_num_seqs.'),
});

/** Builds the legacy stage schema; `engineArgs` lets `omnistage schema` plug in per-type schemas. */
export function createLegacyStageSchema<E extends z.ZodType = typeof anyMap>(engineArgs: E = anyMap as unknown as E) {
  return z.strictObject({
    stage_id: z.int().meta({ description: 'Stage identity, referenced by engine_input_source and connectors.' }),
    stage_type: z
      .string()
      .min(1)
      .optional()
      .meta({ description: 'Stage type handled by a plugin (`llm` when absent).' }),
    engine: z
      .string()
      .min(1)
      .nullable()
      .optional()
      .meta({ description: 'Engine of the stage type to use (omnistage extension).' }),
    runtime: legacyRuntimeSchema.nullable().optional(),
    engine_args: engineArgs.nullable().optional(),
    engine_input_source: z.array(z.int()).nullable().optional(),
    final_output: z.boolean().optional(),
    final_output_type: z.string().nullable().optional(),
    is_comprehension: z.boolean().optional(),
    default_sampling_params: anyMap.nullable().optional(),
    custom_process_input_func: hookSchema,
    prompt_expand_func: hookSchema,
    cfg_kv_collect_func: hookSchema,
    input_connectors: connectorMapSchema.nullable().optional(),
    output_connectors: connectorMapSchema.nullable().optional(),
    default_pooling_params: anyMap
      .nullable()
      .optional()
      .meta({ description: 'Pooling params of a `runner: pooling` stage (upstream).' }),
    tts_args: z.unknown().optional(),
    subtalker_sampling_params: z.unknown().optional(),
  });
}

export const legacyStageSchema = createLegacyStageSchema();
export type LegacyStageInput = z.output<typeof legacyStageSchema>;

/** Stage keys that are passed through untouched into `StageConfig.extras`. */
export const LEGACY_EXTRA_KEYS = ['tts_args', 'subtalker_sampling_params', 'default_pooling_params'] as const;

const legacyTopRuntimeSchema = z.strictObject({
  min_ready: z.int().min(1).optional().meta({
    description:
      "Head mode: live replicas every stage needs before the pipeline is ready (default 1; a stage's runtime.min_ready wins, --min-ready overrides both).",
  }),
  connectors: z.record(z.string(), connectorSpecSchema).nullable().optional(),
  edges: z.array(edgeSchema).nullable().optional(),
  enabled: deprecatedKey('Dead configuration, removed upstream in #2343.'),
  defaults: deprecatedKey('Dead configuration (window_size / max_inflight defaults), removed upstream in #2343.'),
  ...livenessFields,
});

const commonTopLevel = {
  modes: z.array(modeSchema).nullable().optional(),
  model: z
    .string()
    .min(1)
    .nullable()
    .optional()
    .meta({ description: 'Model to serve (omnistage extension); --model wins.' }),
  plugins: z.array(pluginRefSchema).nullable().optional(),
};

export function createLegacyFileSchema<S extends z.ZodType = typeof legacyStageSchema>(
  stage: S = legacyStageSchema as unknown as S,
) {
  return z
    .strictObject({
      stage_args: z.array(stage).min(1),
      async_chunk: z.boolean().optional(),
      runtime: legacyTopRuntimeSchema.nullable().optional(),
      ...commonTopLevel,
    })
    .meta({ title: 'omnistage pipeline (legacy stage_args schema)' });
}

export const legacyFileSchema = createLegacyFileSchema();

// ---------------------------------------------------------------- deploy (`stages`)

/** Keys of a deploy stage that go to `runtime` (flat or in a nested `runtime:` block). */
export const DEPLOY_RUNTIME_KEYS = ['devices', 'num_replicas', 'env', 'restart', 'max_inflight_per_replica'] as const;

const deployRuntimeSchema = z.strictObject({
  devices: devicesSchema.nullable().optional(),
  num_replicas: z.int().min(0).optional(),
  min_ready: z.int().min(1).optional().meta({
    description:
      'Head mode: live replicas this stage needs before the pipeline is ready (default 1; --min-ready overrides).',
  }),
  env: envSchema.nullable().optional(),
  restart: restartSchema.optional(),
  max_inflight_per_replica: maxInflightSchema.optional(),
  process: z.boolean().optional(),
  requires_multimodal_data: z.boolean().optional(),
  max_batch_size: deprecatedKey('Deprecated upstream; migrated to max_num_seqs (FutureWarning upstream).'),
});

const optInt = (min?: number) => (min === undefined ? z.int() : z.int().min(min)).nullable().optional();
const optBool = z.boolean().nullable().optional();
const optStr = z.string().nullable().optional();

/** Engine fields upstream types in `StageDeployConfig`: type-checked here, then sent to engine_args. */
export const deployTypedEngineFields = {
  tensor_parallel_size: optInt(1),
  gpu_memory_utilization: z.number().gt(0).max(1).nullable().optional(),
  max_num_seqs: optInt(1),
  max_num_batched_tokens: optInt(1),
  max_model_len: z
    .union([z.int().min(1), z.string()])
    .nullable()
    .optional(),
  enforce_eager: optBool,
  async_scheduling: optBool,
  disable_hybrid_kv_cache_manager: optBool,
  mm_processor_cache_gb: z.number().min(0).nullable().optional(),
  enable_expert_parallel: optBool,
  ulysses_degree: optInt(1),
  ulysses_mode: optStr,
  ring_degree: optInt(1),
  sequence_parallel_size: optInt(1),
  cfg_parallel_size: optInt(1),
  vae_patch_parallel_size: optInt(1),
  use_hsdp: optBool,
  hsdp_shard_size: optInt(),
  hsdp_replicate_size: optInt(),
  compilation_config: z.union([anyMap, z.string(), z.int()]).nullable().optional(),
  profiler_config: z.union([anyMap, z.string()]).nullable().optional(),
  skip_mm_profiling: optBool,
  enable_flashinfer_autotune: optBool,
  config_format: optStr,
  load_format: optStr,
  tokenizer_mode: optStr,
  runner: z
    .enum(['auto', 'generate', 'pooling', 'draft'])
    .nullable()
    .optional()
    .meta({ description: 'vLLM runner; `pooling` for pooling stages.' }),
};

/** Pipeline-wide engine fields: applied to every stage that does not set them itself. */
export const deployPipelineWideFields = {
  trust_remote_code: optBool,
  distributed_executor_backend: optStr,
  dtype: optStr,
  quantization: optStr,
  enable_prefix_caching: optBool,
  enable_chunked_prefill: optBool,
  data_parallel_size: optInt(1),
  pipeline_parallel_size: optInt(1),
  custom_voice_dir: optStr,
  active_stream_window: optInt(0),
};

/** Deploy stage keys that are not engine args (everything else is one). */
export const DEPLOY_STAGE_KEYS = [
  'stage_id',
  'engine',
  'runtime',
  'engine_args',
  'input_connectors',
  'output_connectors',
  'default_sampling_params',
  'default_pooling_params',
  ...DEPLOY_RUNTIME_KEYS,
] as const;

export function createDeployStageSchema<E extends z.ZodType = typeof anyMap>(engineArgs: E = anyMap as unknown as E) {
  return z
    .object({
      stage_id: z.int().meta({ description: 'Matches the stage of the pipeline (and of base_config / platforms).' }),
      engine: z.string().min(1).nullable().optional(),
      devices: devicesSchema.nullable().optional(),
      num_replicas: z.int().min(0).optional(),
      env: envSchema.nullable().optional(),
      restart: restartSchema.optional(),
      max_inflight_per_replica: maxInflightSchema.optional(),
      runtime: deployRuntimeSchema.nullable().optional(),
      engine_args: engineArgs.nullable().optional(),
      input_connectors: connectorMapSchema.nullable().optional(),
      output_connectors: connectorMapSchema.nullable().optional(),
      default_sampling_params: anyMap.nullable().optional(),
      default_pooling_params: anyMap
        .nullable()
        .optional()
        .meta({ description: 'Pooling params (deep-merged like default_sampling_params).' }),
      subtalker_sampling_params: anyMap.nullable().optional(),
      ...deployTypedEngineFields,
      ...deployPipelineWideFields,
    })
    .catchall(z.unknown().meta({ description: 'Any other key is an engine arg.' }));
}

export const deployStageSchema = createDeployStageSchema();

export function createDeployFileSchema<S extends z.ZodType = typeof deployStageSchema>(
  stage: S = deployStageSchema as unknown as S,
) {
  return z
    .strictObject({
      base_config: z.string().min(1).optional().meta({ description: 'Parent deploy file, relative to this file.' }),
      pipeline: z
        .string()
        .min(1)
        .nullable()
        .optional()
        .meta({ description: 'Registered pipeline (topology) to use; --pipeline wins.' }),
      session_mode: z
        .enum(['turn', 'duplex'])
        .nullable()
        .optional()
        .meta({ description: 'Request/response turns or a full-duplex session.' }),
      duplex_session: z
        .strictObject({ max_sessions: z.int().gt(0).optional() })
        .catchall(z.number().gt(0))
        .nullable()
        .optional()
        .meta({ description: 'Duplex session limits; every value must be > 0.' }),
      async_chunk: z.boolean().optional(),
      connectors: z.record(z.string(), connectorSpecSchema).nullable().optional(),
      edges: z.array(edgeSchema).nullable().optional(),
      runtime: z
        .strictObject(livenessFields)
        .nullable()
        .optional()
        .meta({ description: 'Pipeline-wide liveness settings (omnistage extension).' }),
      stages: z.array(stage).nullable().optional(),
      platforms: z
        .record(z.string(), z.strictObject({ stages: z.array(stage).nullable().optional() }).nullable())
        .nullable()
        .optional()
        .meta({ description: `Per-platform stage overlays (${PLATFORM_NAMES.join(', ')}).` }),
      ...deployPipelineWideFields,
      ...commonTopLevel,
    })
    .meta({ title: 'omnistage pipeline (deploy stages schema)' });
}

export const deployFileSchema = createDeployFileSchema();

// ---------------------------------------------------------------- --stage-overrides

/** Keys of an override that cannot be changed from the command line (topology lives in the file). */
export const OVERRIDE_FORBIDDEN_KEYS = [
  'stage_id',
  'stage_type',
  'engine_input_source',
  'final_output',
  'final_output_type',
  'is_comprehension',
  'input_connectors',
  'output_connectors',
  'custom_process_input_func',
  'prompt_expand_func',
  'cfg_kv_collect_func',
] as const;

export const stageOverrideSchema = z
  .object({
    devices: devicesSchema.nullable().optional(),
    num_replicas: z.int().min(0).optional(),
    env: envSchema.optional(),
    restart: restartSchema.optional(),
    max_inflight_per_replica: maxInflightSchema.optional(),
    engine: z.string().min(1).nullable().optional(),
    default_sampling_params: anyMap.optional(),
    runtime: z
      .strictObject({
        devices: devicesSchema.nullable().optional(),
        num_replicas: z.int().min(0).optional(),
        env: envSchema.optional(),
        restart: restartSchema.optional(),
        max_inflight_per_replica: maxInflightSchema.optional(),
      })
      .optional(),
    engine_args: anyMap.optional(),
  })
  .catchall(z.unknown());

export const stageOverridesSchema = z.record(z.string(), stageOverrideSchema);
