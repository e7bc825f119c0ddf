import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { VLLM_KNOWN_FLAGS } from '../src/vllm-flags.js';
import { deriveVllmServeArgv, vllmServeArgv } from '../src/vllm-serve-argv.js';
import { FILE, thrown } from './helpers.js';

const head = (model: string, port: number, host = '127.0.0.1'): string[] => [
  'vllm',
  'serve',
  model,
  '--host',
  host,
  '--port',
  String(port),
];

describe('vllmServeArgv', () => {
  it('starts with vllm serve <model> --host 127.0.0.1 --port N', () => {
    expect(vllmServeArgv({}, { model: '/m', port: 8100 })).toEqual(head('/m', 8100));
  });

  it('honours host and executable', () => {
    expect(vllmServeArgv({}, { model: 'org/m', port: 9000, host: '0.0.0.0', executable: '/venv/bin/vllm' })).toEqual([
      '/venv/bin/vllm',
      'serve',
      'org/m',
      '--host',
      '0.0.0.0',
      '--port',
      '9000',
    ]);
  });

  it('turns snake_case keys into --kebab-case flags with their values as text', () => {
    const argv = vllmServeArgv(
      {
        tensor_parallel_size: 2,
        gpu_memory_utilization: 0.45,
        max_model_len: 32768,
        dtype: 'bfloat16',
        distributed_executor_backend: 'mp',
      },
      { model: '/m', port: 8000 },
    );
    expect(argv.slice(7)).toEqual([
      '--tensor-parallel-size',
      '2',
      '--gpu-memory-utilization',
      '0.45',
      '--max-model-len',
      '32768',
      '--dtype',
      'bfloat16',
      '--distributed-executor-backend',
      'mp',
    ]);
  });

  it('booleans: true → bare flag; false → --no-<flag> only for BooleanOptionalAction flags', () => {
    const argv = vllmServeArgv(
      {
        enforce_eager: true,
        trust_remote_code: true,
        enable_prefix_caching: false,
        enable_chunked_prefill: false,
        async_scheduling: false,
        disable_log_stats: false, // store_true: nothing to say
        headless: true,
        my_unknown_bool: false, // unknown: cannot know --no- exists
        my_unknown_on: true,
      },
      { model: '/m', port: 8000 },
    );
    expect(argv.slice(7)).toEqual([
      '--enforce-eager',
      '--trust-remote-code',
      '--no-enable-prefix-caching',
      '--no-enable-chunked-prefill',
      '--no-async-scheduling',
      '--headless',
      '--my-unknown-on',
    ]);
  });

  it('objects and non-nargs arrays become JSON strings; nargs lists become separate words', () => {
    const kv = { kv_connector: 'NixlConnector', kv_role: 'kv_both' };
    const argv = vllmServeArgv(
      {
        kv_transfer_config: kv,
        hf_overrides: { architectures: ['Qwen2_5OmniThinker'] },
        compilation_config: { level: 3, cudagraph_capture_sizes: [1, 2] },
        served_model_name: ['a', 'b'],
        cudagraph_capture_sizes: [1, 2, 4],
        some_unknown_list: [1, 'x'],
        logits_processors: [],
      },
      { model: '/m', port: 8000 },
    );
    expect(argv.slice(7)).toEqual([
      '--kv-transfer-config',
      JSON.stringify(kv),
      '--hf-overrides',
      '{"architectures":["Qwen2_5OmniThinker"]}',
      '--compilation-config',
      '{"level":3,"cudagraph_capture_sizes":[1,2]}',
      '--served-model-name',
      'a',
      'b',
      '--cudagraph-capture-sizes',
      '1',
      '2',
      '4',
      '--some-unknown-list',
      '[1,"x"]',
    ]);
  });

  it('a string for a nargs flag is one word', () => {
    expect(vllmServeArgv({ served_model_name: 'qwen' }, { model: '/m', port: 8000 }).slice(7)).toEqual([
      '--served-model-name',
      'qwen',
    ]);
  });

  it('drops null/undefined values, omni-only keys, test knobs and launcher-owned keys', () => {
    const argv = vllmServeArgv(
      {
        model: '/ignored',
        host: '1.2.3.4',
        port: 1,
        stage_id: 0,
        model_stage: 'thinker',
        model_arch: 'Qwen2_5OmniForConditionalGeneration',
        worker_type: 'ar',
        engine_output_type: 'latent',
        async_chunk: true,
        stage_connector_spec: { name: 'x' },
        has_sampling_extra_args: false,
        omni_kv_config: { need_send_cache: true },
        model_subdir: 'a',
        tokenizer_subdir: 'b',
        custom_process_next_stage_input_func: 'x.y',
        init_delay_ms: 5,
        fail_phase: 'hello',
        fail_exit_code: 3,
        hang_phase: 'ready',
        token_delay_ms: 1,
        max_num_seqs: null,
        quantization: undefined,
        worker_cls: 'vllm_omni.worker.gpu_ar_worker.GPUARWorker',
      },
      { model: '/real', port: 8000 },
    );
    expect(argv).toEqual([...head('/real', 8000), '--worker-cls', 'vllm_omni.worker.gpu_ar_worker.GPUARWorker']);
  });

  it('reports keys that are not known vLLM flags, still passing them', () => {
    const { argv, unknownKeys, warnings } = deriveVllmServeArgv(
      { max_num_seqs: 4, enforce_eagr: true, custom_knob: 3 },
      { model: '/m', port: 8000, locate: (k) => (k === 'custom_knob' ? { file: FILE, line: 5, col: 9 } : undefined) },
    );
    expect(argv.slice(7)).toEqual(['--max-num-seqs', '4', '--enforce-eagr', '--custom-knob', '3']);
    expect(unknownKeys).toEqual(['enforce_eagr', 'custom_knob']);
    expect(warnings.map((w) => w.code)).toEqual(['OMNI_WARN_VLLM_FLAG_UNKNOWN', 'OMNI_WARN_VLLM_FLAG_UNKNOWN']);
    expect(warnings[0]).toMatchObject({ file: null, line: null });
    expect(warnings[1]).toMatchObject({ file: FILE, line: 5, col: 9 });
    expect(warnings[1]?.message).toContain('--custom-knob');
    expect(warnings[1]?.hint).toBeTruthy();
    // A near miss of a known flag names it.
    expect(warnings[0]?.hint).toMatch(/^Did you mean `enforce_eager` \(--enforce-eager\)\?/);
    expect(warnings[1]?.hint).not.toContain('Did you mean');
  });

  it('a near miss of a vLLM-Omni key names it, and says it is not a flag', () => {
    const { warnings } = deriveVllmServeArgv({ model_stge: 'thinker' }, { model: '/m', port: 8000 });
    expect(warnings[0]?.hint).toMatch(/^Did you mean `model_stage` \(a vLLM-Omni key, not a flag\)\?/);
  });

  it('no warnings when every key is known or omni-only', () => {
    const { warnings, unknownKeys } = deriveVllmServeArgv(
      { tensor_parallel_size: 2, enforce_eager: false, stage_id: 0, worker_type: 'ar' },
      { model: '/m', port: 8000 },
    );
    expect(warnings).toEqual([]);
    expect(unknownKeys).toEqual([]);
  });

  it.each([[0], [65536], [80.5], [Number.NaN]])('rejects port %d', (port) => {
    const err = thrown(() => vllmServeArgv({}, { model: '/m', port })) as OmniError;
    expect(err).toBeInstanceOf(OmniError);
    expect(err.code).toBe('OMNI_INTERNAL');
  });

  it('the flag table covers the flags of anchors-serving §2.6 and the brief', () => {
    for (const k of [
      'tensor_parallel_size',
      'pipeline_parallel_size',
      'data_parallel_size',
      'data_parallel_size_local',
      'data_parallel_address',
      'data_parallel_rpc_port',
      'data_parallel_start_rank',
      'api_server_count',
      'gpu_memory_utilization',
      'max_model_len',
      'max_num_seqs',
      'max_num_batched_tokens',
      'enforce_eager',
      'trust_remote_code',
      'served_model_name',
      'distributed_executor_backend',
      'kv_transfer_config',
      'kv_events_config',
      'enable_prefix_caching',
      'enable_chunked_prefill',
      'dtype',
      'quantization',
      'tokenizer',
      'worker_cls',
      'scheduler_cls',
      'compilation_config',
      'hf_overrides',
      'seed',
      'shutdown_timeout',
      'headless',
      'async_scheduling',
    ]) {
      expect(VLLM_KNOWN_FLAGS[k], k).toBeDefined();
    }
    expect(VLLM_KNOWN_FLAGS['enable_prefix_caching']?.negatable).toBe(true);
    expect(VLLM_KNOWN_FLAGS['headless']?.negatable).toBeUndefined();
  });
});
