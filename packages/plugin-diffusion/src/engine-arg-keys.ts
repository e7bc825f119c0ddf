import { diffusionEngineArgsJsonSchema } from './engine-args-schema.js';

/**
 * Fields of vLLM-Omni's `OmniDiffusionConfig` (`vllm_omni/diffusion/data.py`), the engine args of
 * its diffusion engine: those of the reference revision and those added later, so newer files load.
 */
const OMNI_DIFFUSION_CONFIG_FIELDS = [
  'stage_id',
  'model',
  'model_class_name',
  'task_type',
  'dtype',
  'model_config',
  'tf_model_config',
  'attention_backend',
  'diffusion_attention_config',
  'fa_deterministic',
  'cache_strategy',
  'parallel_config',
  'cache_backend',
  'cache_config',
  'video_output_transport',
  'enable_cache_dit_summary',
  'enable_prompt_embed_cache',
  'prompt_embed_cache_size',
  'enable_session_state_manager',
  'distributed_executor_backend',
  'nccl_port',
  'engine_backend',
  'diffusion_kv_mode',
  'diffusion_kv_max_rows_per_request',
  'diffusion_model_runner_cls',
  'trust_remote_code',
  'revision',
  'num_gpus',
  'hsdp_replicate_dim',
  'hsdp_shard_dim',
  'dist_timeout',
  'lora_path',
  'lora_nickname',
  'lora_target_modules',
  'lora_scale',
  'lora_backend',
  'max_cpu_loras',
  'output_type',
  'diffusion_offload_config',
  'enable_cpu_offload',
  'enable_layerwise_offload',
  'enable_distributed_layerwise_offload',
  'dlo_use_allgather',
  'dlo_resident_layers',
  'host_weight_runtime_mode',
  'host_weight_runtime_root',
  'dlo_host_registration_limit_gib',
  'use_fsdp_inference',
  'pin_cpu_memory',
  'vae_use_slicing',
  'vae_use_tiling',
  'mask_strategy_file_path',
  'skip_time_steps',
  'moe_backend',
  'enforce_eager',
  'diffusion_compile_granularity',
  'diffusion_compile_dynamic',
  'enable_multithread_weight_load',
  'enable_broadcast_weight_load',
  'num_weight_load_threads',
  'enable_sleep_mode',
  'disable_autocast',
  'VSA_sparsity',
  'moba_config_path',
  'master_port',
  'worker_extension_cls',
  'custom_pipeline_args',
  'diffusion_load_format',
  'diffusers_load_kwargs',
  'diffusers_call_kwargs',
  'host',
  'port',
  'scheduler_port',
  'enable_stage_verification',
  'prompt_file_path',
  'model_paths',
  'model_loaded',
  'override_transformer_cls_name',
  'boundary_ratio',
  'flow_shift',
  'supports_multimodal_inputs',
  'max_multimodal_image_inputs',
  'supports_mixed_reference_inputs',
  'log_level',
  'omni_kv_config',
  'kv_transfer_config',
  'additional_config',
  'profiler_config',
  'cfg_kv_collect_func',
  'quantization_config',
  'force_cutlass_fp8',
  'diffusion_kv_cache_dtype',
  'diffusion_kv_cache_skip_steps',
  'diffusion_kv_cache_skip_layers',
  'enable_diffusion_pipeline_profiler',
  'step_execution',
  'streaming_output',
  'max_num_seqs',
  'kv_cache_memory_bytes',
  'gpu_memory_utilization',
  'max_num_batched_tokens',
  'max_model_len',
  'request_batch_max_wait_ms',
  'extras',
];

/** Older names vLLM-Omni still accepts and moves onto the fields above (with a deprecation warning). */
const OMNI_DIFFUSION_ALIASES = [
  'static_lora_scale',
  'quantization',
  'diffusion_quantization_config',
  'max_batch_size',
  'kv_cache_dtype',
  'kv_cache_skip_steps',
  'kv_cache_skip_layers',
  'diffusion_attention_backend',
  'fastvideo_vsa_topk',
  'auxiliary_text_encoder',
  'diffusion_streaming_output',
];

/**
 * Stage-level keys upstream files write into diffusion stages' engine args that the diffusion
 * config does not declare and upstream's factory tolerates (stage wiring and LLM-side settings of
 * stages shared with an AR model).
 */
const UPSTREAM_STAGE_KEYS = [
  'model_arch',
  'async_chunk',
  'skip_mm_profiling',
  'enable_prefix_caching',
  'custom_process_next_stage_input_func',
];

/** Test knobs of the reference worker, and `batch_size`, which `--diffusion-batch-size` sets. */
const REFERENCE_KEYS = ['init_delay_ms', 'fail_phase', 'fail_exit_code', 'batch_size'];

/**
 * The engine args the reference diffusion engine takes: those of the vLLM-Omni diffusion engine it
 * stands in for, and its own. Any other key is warned about at its line (a typo such as
 * `vae_use_slicng` would otherwise do nothing, silently).
 */
export const REFERENCE_DIFFUSION_ENGINE_ARGS: readonly string[] = [
  ...new Set([
    ...OMNI_DIFFUSION_CONFIG_FIELDS,
    ...OMNI_DIFFUSION_ALIASES,
    ...UPSTREAM_STAGE_KEYS,
    ...REFERENCE_KEYS,
    ...Object.keys(diffusionEngineArgsJsonSchema['properties'] as object),
  ]),
].sort();
