import type { Diagnostic, EngineArgs, PlatformName, StageConfig } from '@omnistage/core';
import { applyCliTokenizer } from './cli-tokenizer.js';
import { deepCopy } from './deep-copy.js';
import { resolveModelSubdirs } from './model-subdir.js';
import { isPyTruthy } from './python-compat.js';
import { resolveWorkerCls } from './worker-cls.js';

/** The architecture whose MoE FP16 FlashInfer path regresses (upstream `_maybe_set_qwen3_omni_moe_env`). */
export const QWEN3_OMNI_MOE_ARCH = 'Qwen3OmniMoeForConditionalGeneration';

/** Inputs of {@link buildEngineArgsDict}. */
export interface BuildEngineArgsOptions {
  /** The pipeline's model (CLI `--model` wins over top-level `model:`); overrides `engine_args.model`. */
  model: string;
  /** Connector spec of this stage (plugin-kv-connector); copied in only when `async_chunk` is truthy. */
  stageConnectorSpec?: Record<string, unknown> | null;
  /** CLI `--tokenizer`; loses to a stage-declared `tokenizer` / `tokenizer_subdir`. */
  cliTokenizer?: string | null;
  /** Platform the replica runs on; picks the worker class paths. */
  platform: PlatformName;
  /** Injectable "is this an existing directory" check for `model_subdir` resolution. */
  modelDirExists?: (p: string) => boolean;
  /**
   * The environment the child would inherit, used only to *read* whether a variable is already set
   * (a user's value always wins). Defaults to `process.env`, which is read, never written.
   */
  baseEnv?: Readonly<Record<string, string | undefined>>;
}

/** Result of {@link buildEngineArgsDict}. */
export interface BuiltEngineArgs {
  /** The normalised engine args (a fresh object; the stage config is left untouched). */
  engineArgs: EngineArgs;
  /** Environment additions for this replica's child process only. */
  env: Record<string, string>;
  warnings: Diagnostic[];
}

/**
 * Builds the normalised engine-args dict of one stage (upstream `build_engine_args_dict` in
 * `vllm_omni/engine/stage_init_utils.py`), plus the per-child environment additions upstream writes into the process environment.
 *
 * Steps, in upstream order:
 *  1. a `null` `tensor_parallel_size` is removed so vLLM's default applies (#3293);
 *  2–4. `stage_type`/`stage_id` are read; `stageDefinesTokenizer` = `tokenizer` or
 *     `tokenizer_subdir` non-null, before any resolution;
 *  5. `model_subdir` / `tokenizer_subdir` indirection ({@link resolveModelSubdirs});
 *  6. the CLI tokenizer, unless the stage defines its own ({@link applyCliTokenizer});
 *  7–8. `model` and `stage_id` are overwritten from the arguments / stage config;
 *  9. truthy `async_chunk` → `stage_connector_spec` = a copy of `stageConnectorSpec ?? {}`;
 *  10. diffusion attention config: not handled here (that normalisation belongs to
 *     `@omnistage/plugin-diffusion`; the key passes through untouched);
 *  11. non-diffusion stages: `worker_cls` from `worker_type` ({@link resolveWorkerCls}, lower-cased);
 *  12. `worker_type === 'generation'` **exactly** (case-sensitive, unlike step 11):
 *     `disable_hybrid_kv_cache_manager` defaults to true, `enable_prefix_caching` to false;
 *  13. `has_sampling_extra_args` = Python truthiness of `default_sampling_params.extra_args`;
 *  14. `model_arch === 'Qwen3OmniMoeForConditionalGeneration'` → env
 *     `VLLM_USE_FLASHINFER_MOE_FP16=0` unless `baseEnv` defines it.
 * And from upstream `build_vllm_config`: a non-null `max_model_len` → env
 * `VLLM_ALLOW_LONG_MAX_MODEL_LEN=1` unless `baseEnv` has a non-empty value.
 *
 * Deliberate deviations from upstream:
 * - the stage config is **not mutated**: upstream deletes a null `tensor_parallel_size` from the
 *   stage's own engine args; here all work happens on a deep copy, because the stage config is
 *   shared by planning, every replica and `omnistage plan` output, and a build step that rewrites
 *   it makes results depend on call order;
 * - environment variables are **returned**, never written to `process.env` (upstream sets them
 *   process-wide and never restores them), so concurrent launches cannot race;
 * - sub-directories resolve against a local model directory only (no Hugging Face cache lookup).
 */
export function buildEngineArgsDict(stage: StageConfig, options: BuildEngineArgsOptions): BuiltEngineArgs {
  // Step 1 on the copy, not on the stage config (see the deviations above).
  const d: EngineArgs = deepCopy(stage.engine_args);
  if (
    Object.hasOwn(d, 'tensor_parallel_size') &&
    (d['tensor_parallel_size'] === null || d['tensor_parallel_size'] === undefined)
  ) {
    delete d['tensor_parallel_size'];
  }

  const stageType = stage.stage_type || 'llm';
  const stageId = stage.stage_id;

  const stageDefinesTokenizer =
    (d['tokenizer'] !== null && d['tokenizer'] !== undefined) ||
    (d['tokenizer_subdir'] !== null && d['tokenizer_subdir'] !== undefined);

  const { model, warnings } = resolveModelSubdirs(stage, d, {
    model: options.model,
    ...(options.modelDirExists ? { modelDirExists: options.modelDirExists } : {}),
  });

  applyCliTokenizer(d, { cliTokenizer: options.cliTokenizer, stageDefinesTokenizer });

  d['model'] = model;
  d['stage_id'] = stageId;

  if (isPyTruthy(d['async_chunk'])) {
    // Upstream copies shallowly; a deep copy also keeps the caller's nested `extra` unaliased.
    d['stage_connector_spec'] = deepCopy(options.stageConnectorSpec ?? {});
  }

  if (stageType !== 'diffusion') {
    resolveWorkerCls(d, options.platform, () => stage.locations.at('engine_args.worker_type'));
  }

  if (d['worker_type'] === 'generation') {
    // Non-AR generation stages (code2wav) gain nothing from prefix caching, and their hybrid KV
    // layouts trip vLLM's prefix-cache coordinator; an explicit value (even null) still wins.
    if (!Object.hasOwn(d, 'disable_hybrid_kv_cache_manager')) d['disable_hybrid_kv_cache_manager'] = true;
    if (!Object.hasOwn(d, 'enable_prefix_caching')) d['enable_prefix_caching'] = false;
  }

  d['has_sampling_extra_args'] = isPyTruthy(stage.default_sampling_params['extra_args']);

  const baseEnv = options.baseEnv ?? process.env;
  const env: Record<string, string> = {};
  // Upstream's test is "not in os.environ" here: an empty value counts as set.
  if (d['model_arch'] === QWEN3_OMNI_MOE_ARCH && baseEnv['VLLM_USE_FLASHINFER_MOE_FP16'] === undefined) {
    env['VLLM_USE_FLASHINFER_MOE_FP16'] = '0';
  }
  // ...and "unset or empty" here (upstream `build_vllm_config`).
  if (d['max_model_len'] !== null && d['max_model_len'] !== undefined && !baseEnv['VLLM_ALLOW_LONG_MAX_MODEL_LEN']) {
    env['VLLM_ALLOW_LONG_MAX_MODEL_LEN'] = '1';
  }

  return { engineArgs: d, env, warnings };
}
