/**
 * The `vllm serve` flags omnistage knows how to derive from engine args, and the engine-args keys
 * that are not vLLM flags at all.
 *
 * Sources: vLLM's `EngineArgs.add_cli_args` (`vllm/engine/arg_utils.py`) and the serve-side flags a
 * launcher emits (design/anchors-serving.md §2.6). In vLLM every flag generated from a `bool`
 * config field uses `argparse.BooleanOptionalAction`, so it also accepts `--no-<flag>`; the few
 * flags added by hand with `action="store_true"` (`--disable-log-stats`, `--headless`, ...) do not.
 */

/** How one engine-arg key maps onto its `vllm serve` flag. */
export interface VllmFlagSpec {
  /** JSON type of the value in engine args (`string|array`: a string or a list of strings). */
  type: 'integer' | 'number' | 'string' | 'boolean' | 'object' | 'array' | 'string|array';
  /** Boolean flags: vLLM declares `BooleanOptionalAction`, so `false` is passed as `--no-<flag>`. */
  negatable?: boolean;
  /** List flags: vLLM declares `nargs='+'`, so elements go as separate argv words, not JSON. */
  nargs?: boolean;
  /** One line for `omnistage schema` and docs. */
  description: string;
}

const bool = (description: string): VllmFlagSpec => ({ type: 'boolean', negatable: true, description });
const storeTrue = (description: string): VllmFlagSpec => ({ type: 'boolean', description });
const int = (description: string): VllmFlagSpec => ({ type: 'integer', description });
const num = (description: string): VllmFlagSpec => ({ type: 'number', description });
const str = (description: string): VllmFlagSpec => ({ type: 'string', description });
const json = (description: string): VllmFlagSpec => ({ type: 'object', description });
const list = (description: string): VllmFlagSpec => ({ type: 'array', nargs: true, description });
const strOrList = (description: string): VllmFlagSpec => ({ type: 'string|array', nargs: true, description });

/**
 * Engine-arg key (snake_case) → `vllm serve` flag spec. The flag is always the key in kebab-case
 * (`max_model_len` → `--max-model-len`). Keys missing here are still passed (vLLM may know them)
 * but {@link deriveVllmServeArgv} reports them so the plugin can warn.
 */
export const VLLM_KNOWN_FLAGS: Readonly<Record<string, VllmFlagSpec>> = {
  // ModelConfig
  tokenizer: str('Name or path of the Hugging Face tokenizer; defaults to the model.'),
  tokenizer_mode: str('Tokenizer mode: auto, slow, mistral, custom.'),
  trust_remote_code: bool('Trust remote code from Hugging Face.'),
  dtype: str('Weights/activations dtype: auto, half, float16, bfloat16, float, float32.'),
  seed: int('Random seed.'),
  hf_config_path: str('Name or path of the Hugging Face config to use.'),
  revision: str('Model revision (branch, tag or commit).'),
  code_revision: str('Model code revision on the Hub.'),
  tokenizer_revision: str('Tokenizer revision.'),
  max_model_len: int('Model context length; derived from the model config when unset.'),
  quantization: str('Weight quantization method (e.g. fp8, awq, gptq).'),
  enforce_eager: bool('Always use eager-mode PyTorch (no CUDA graphs).'),
  max_logprobs: int('Maximum number of log probabilities returned per token.'),
  disable_sliding_window: bool('Disable sliding-window attention.'),
  disable_cascade_attn: bool('Disable cascade attention.'),
  skip_tokenizer_init: bool('Skip tokenizer and detokenizer initialisation.'),
  enable_prompt_embeds: bool('Accept prompt embeddings as input.'),
  served_model_name: strOrList('Model name(s) used in the API.'),
  hf_overrides: json('Overrides applied to the Hugging Face config.'),
  generation_config: str("Generation config source: 'auto', 'vllm' or a folder path."),
  override_generation_config: json('Overrides applied to the generation config.'),
  enable_sleep_mode: bool('Enable sleep mode (GPU memory pool) for the engine.'),
  model_impl: str('Model implementation: auto, vllm, transformers.'),
  logits_processors: list('Fully qualified class names of custom logits processors.'),
  allowed_local_media_path: str('Directory the API may read local media from.'),
  rope_scaling: json('RoPE scaling configuration.'),
  limit_mm_per_prompt: json('Maximum number of multimodal items per prompt, per modality.'),
  mm_processor_kwargs: json('Arguments for the multimodal processor.'),
  mm_processor_cache_gb: num('Multimodal processor cache size in GiB (0 disables it).'),
  skip_mm_profiling: bool('Skip multimodal memory profiling at start-up.'),
  config_format: str('Format of the model config to load: auto, hf, mistral.'),
  // LoadConfig
  load_format: str('Weight format to load (auto, safetensors, pt, dummy, ...).'),
  download_dir: str('Directory to download and load weights from.'),
  model_loader_extra_config: json('Extra configuration for the model loader.'),
  ignore_patterns: strOrList('Patterns of files to ignore when loading the model.'),
  // ParallelConfig
  distributed_executor_backend: str('Executor backend: mp, ray, uni or external_launcher.'),
  tensor_parallel_size: int('Number of tensor-parallel ranks.'),
  pipeline_parallel_size: int('Number of pipeline-parallel stages.'),
  data_parallel_size: int('Number of data-parallel replicas.'),
  data_parallel_size_local: int('Data-parallel replicas on this node.'),
  data_parallel_address: str('Address of the data-parallel head node.'),
  data_parallel_rpc_port: int('Port for data-parallel RPC.'),
  data_parallel_start_rank: int('Starting data-parallel rank of a secondary node.'),
  data_parallel_rank: int('Data-parallel rank of this instance (external load balancing).'),
  data_parallel_backend: str('Data-parallel backend: mp or ray.'),
  decode_context_parallel_size: int('Number of decode context-parallel ranks.'),
  prefill_context_parallel_size: int('Number of prefill context-parallel ranks.'),
  enable_expert_parallel: bool('Use expert parallelism instead of tensor parallelism for MoE layers.'),
  enable_eplb: bool('Enable expert-parallel load balancing.'),
  eplb_config: json('Expert-parallel load-balancing configuration.'),
  max_parallel_loading_workers: int('Load the model sequentially in this many batches.'),
  disable_custom_all_reduce: bool("Disable vLLM's custom all-reduce kernel."),
  worker_cls: str('Worker class (fully qualified name).'),
  worker_extension_cls: str('Worker extension class (fully qualified name).'),
  // CacheConfig
  block_size: int('KV-cache block size in tokens.'),
  gpu_memory_utilization: num('Fraction of GPU memory this engine may use (0..1).'),
  kv_cache_memory_bytes: int('KV-cache size in bytes (overrides gpu_memory_utilization).'),
  swap_space: num('CPU swap space per GPU in GiB.'),
  kv_cache_dtype: str('KV-cache dtype: auto, fp8, fp8_e4m3, fp8_e5m2, ...'),
  num_gpu_blocks_override: int('Number of GPU blocks to use instead of profiling.'),
  enable_prefix_caching: bool('Enable automatic prefix caching.'),
  prefix_caching_hash_algo: str('Hash algorithm for prefix caching.'),
  cpu_offload_gb: num('GiB of model weights to offload to CPU memory per GPU.'),
  calculate_kv_scales: bool('Compute KV-cache scales dynamically (fp8 KV cache).'),
  mamba_ssm_cache_dtype: str('Dtype of the Mamba SSM state cache.'),
  // AttentionConfig (ROCm stages get TRITON_ATTN written by upstream's `extract_stage_metadata`)
  attention_backend: str('Attention backend (e.g. FLASH_ATTN, TRITON_ATTN).'),
  // SchedulerConfig
  max_num_batched_tokens: int('Maximum number of tokens per scheduler iteration.'),
  max_num_seqs: int('Maximum number of sequences per scheduler iteration.'),
  max_num_partial_prefills: int('Maximum number of concurrent partial prefills.'),
  max_long_partial_prefills: int('Maximum number of concurrent long partial prefills.'),
  long_prefill_token_threshold: int('Prompt length above which a prefill counts as long.'),
  scheduling_policy: str('Scheduling policy: fcfs or priority.'),
  enable_chunked_prefill: bool('Enable chunked prefill.'),
  disable_chunked_mm_input: bool('Never split a multimodal item across chunked-prefill steps.'),
  scheduler_cls: str('Scheduler class (fully qualified name).'),
  disable_hybrid_kv_cache_manager: bool('Use one KV-cache layout for all attention layers.'),
  async_scheduling: bool('Overlap scheduling with model execution.'),
  // CompilationConfig
  cudagraph_capture_sizes: list('Batch sizes to capture CUDA graphs for.'),
  max_cudagraph_capture_size: int('Largest batch size to capture CUDA graphs for.'),
  // VllmConfig
  compilation_config: json('torch.compile / CUDA-graph configuration.'),
  speculative_config: json('Speculative decoding configuration.'),
  kv_transfer_config: json('KV-cache transfer (disaggregated prefill) configuration.'),
  kv_events_config: json('KV-cache event publishing configuration.'),
  additional_config: json('Platform-specific additional configuration.'),
  structured_outputs_config: json('Structured-outputs configuration.'),
  reasoning_parser: str('Reasoning parser of the model.'),
  // Hand-written store_true flags: no --no- form.
  disable_log_stats: storeTrue('Disable logging statistics.'),
  // serve (frontend / API server) flags a launcher emits
  api_server_count: int('Number of API server processes.'),
  headless: storeTrue('Run without an API server (secondary data-parallel nodes).'),
  shutdown_timeout: int('Seconds to wait for in-flight requests on shutdown.'),
  disable_access_log_for_endpoints: str('Comma-separated endpoints to leave out of the access log.'),
};

/**
 * Engine-args keys that are omnistage / vLLM-Omni concepts, never `vllm serve` flags
 * (`OmniEngineArgs` fields, sub-directory indirection, the reference engine's test knobs). They
 * are dropped from the argv.
 */
export const OMNI_ONLY_ENGINE_KEYS: ReadonlySet<string> = new Set([
  'stage_id',
  'model_stage',
  'model_arch',
  'worker_type',
  'engine_output_type',
  'final_output',
  'hf_config_name',
  'async_chunk',
  'stage_connector_spec',
  'has_sampling_extra_args',
  'sampling_extra_args_keys',
  'omni_kv_config',
  'model_subdir',
  'tokenizer_subdir',
  'custom_process_next_stage_input_func',
  'requires_full_payload_input',
  'subtalker_sampling_params',
  'retains_state_across_chunks',
  'duplex_max_sessions',
  'custom_voice_dir',
  'diffusion_attention_config',
  'quantization_config',
  'omni',
  'omni_master_address',
  'omni_master_port',
  'omni_dp_size_local',
  'omni_lb_policy',
  'omni_heartbeat_timeout',
  'output_modalities',
  'log_stats',
  'custom_pipeline_args',
  // reference-engine test knobs
  'init_delay_ms',
  'fail_phase',
  'fail_exit_code',
  'hang_phase',
  'token_delay_ms',
  'load_ms',
  'profile_ms',
  'init_phases',
  'window_fault',
]);

/**
 * vLLM engine args that upstream vLLM-Omni deploy files set but that are missing from the
 * documented flag set {@link VLLM_KNOWN_FLAGS} is checked against (newer vLLM releases). The
 * `vllm` engine still warns about them; the reference engine, which stands in for vLLM, takes them.
 */
export const NEWER_VLLM_ENGINE_ARGS: readonly string[] = [
  'attention_config',
  'moe_backend',
  'enable_flashinfer_autotune',
];

/** Keys the launcher owns: the model is the positional argument, host and port are assigned. */
export const LAUNCHER_OWNED_KEYS: ReadonlySet<string> = new Set(['model', 'host', 'port']);

/** `max_model_len` → `max-model-len` (the flag without its leading dashes). */
export function toKebabFlag(key: string): string {
  return key.replace(/_/g, '-');
}
