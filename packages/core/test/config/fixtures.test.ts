import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { at, REPO_FIXTURES, SHARED_FIXTURES, testRegistry, upstream, UPSTREAM_FIXTURES } from './helpers.js';
import type { LoadPipelineOptions } from '../../src/config/load-pipeline.js';

const registry = testRegistry();
/** Deploy files upstream selects by model: the file stem is their pipeline (deploy-yamls.json). */
const BY_MODEL = new Set(['bagel.yaml', 'glm_image.yaml', 'qwen3_omni_moe.yaml']);
const loadUpstream = (name: string, options: LoadPipelineOptions = {}) =>
  loadPipelineConfig(upstream(name), {
    pipelines: registry,
    ...(BY_MODEL.has(name) ? { pipeline: name.replace(/\.yaml$/, '') } : {}),
    ...options,
  });

const fixtures = readdirSync(UPSTREAM_FIXTURES).filter((f) => f.endsWith('.yaml'));

describe('upstream fixtures', () => {
  it('finds the fixture directory', () => {
    expect(fixtures).toEqual(
      expect.arrayContaining([
        'bagel.yaml',
        'bagel_think.yaml',
        'glm_image.yaml',
        'qwen2_5_omni_multiconnector.yaml',
        'qwen3_omni_moe.yaml',
        'wan2_2_ti2v_dit_fp8.yaml',
      ]),
    );
  });

  for (const name of fixtures) {
    for (const platform of ['cuda', 'rocm', 'npu', 'xpu', 'cpu'] as const) {
      it(`loads ${name} on ${platform}`, async () => {
        const config = await loadUpstream(name, { platform });
        expect(config.stages.length).toBeGreaterThan(0);
        expect(config.file).toBe(upstream(name));
        for (const stage of config.stages) {
          // Every recorded location points into a real file of the chain, on a real line.
          for (const [, loc] of stage.locations.entries()) {
            expect(loc.file.startsWith(UPSTREAM_FIXTURES)).toBe(true);
            expect(loc.line).toBeGreaterThan(0);
          }
        }
      });
    }
  }
});

describe('bagel / bagel_think (deploy, base_config, registry)', () => {
  it('bagel has the registry topology: AR llm → diffusion', async () => {
    const config = await loadUpstream('bagel.yaml');
    expect(config.schema).toBe('deploy');
    expect(config.topology).toBe('registry');
    expect(config.pipeline).toBe('bagel');
    expect(config.async_chunk).toBe(false);
    const [s0, s1] = config.stages;
    expect(s0).toMatchObject({
      stage_id: 0,
      stage_type: 'llm',
      is_comprehension: true,
      final_output: true,
      final_output_type: 'text',
      engine_input_source: [],
    });
    expect(s0?.engine_args).toEqual({
      max_num_batched_tokens: 32768,
      max_num_seqs: 3,
      gpu_memory_utilization: 0.45,
      trust_remote_code: true,
      enable_prefix_caching: false,
      async_chunk: false,
      // From upstream's registry (bagel/pipeline.py): the pipeline owns model_stage and worker_type.
      model_arch: 'OmniBagelForConditionalGeneration',
      engine_output_type: 'text',
      omni_kv_config: { need_send_cache: true, kv_transfer_criteria: { type: 'prefill_finished' } },
      model_stage: 'thinker',
      worker_type: 'ar',
    });
    expect(s0?.prompt_expand_func).toBe('vllm_omni.model_executor.stage_input_processors.bagel.expand_cfg_prompts');
    expect(s1).toMatchObject({
      stage_id: 1,
      stage_type: 'diffusion',
      engine_input_source: [0],
      final_output: true,
      final_output_type: 'image',
    });
    expect(s1?.engine_args.worker_type).toBeUndefined();
    expect(s1?.input_connectors).toEqual({ from_stage_0: 'shared_memory_connector' });
    expect(config.connectors.rdma_connector).toEqual({
      name: 'MooncakeTransferEngineConnector',
      extra: {
        host: 'auto',
        zmq_port: 50051,
        protocol: 'rdma',
        device_name: '',
        memory_pool_size: 4294967296,
        memory_pool_device: 'cpu',
      },
    });
    expect(config.warnings).toEqual([]);
  });

  it('bagel_think inherits every stage setting of bagel and selects its own pipeline', async () => {
    const base = await loadUpstream('bagel.yaml');
    const think = await loadUpstream('bagel_think.yaml');
    expect(think.pipeline).toBe('bagel_think');
    expect(think.topology).toBe('registry');
    expect(think.file).toBe(upstream('bagel_think.yaml'));
    // Same stage settings (inherited) and topology; the think pipeline's own processors differ.
    const shape = (s: (typeof base.stages)[number]) => [
      s.stage_id,
      s.stage_type,
      s.engine_input_source,
      s.final_output_type,
      s.runtime,
      s.default_sampling_params,
    ];
    expect(think.stages.map(shape)).toEqual(base.stages.map(shape));
    expect(think.stages[0]?.prompt_expand_func).toBe(
      'vllm_omni.model_executor.stage_input_processors.bagel.expand_cfg_prompts_think',
    );
    expect(think.connectors).toEqual(base.connectors);
    expect(think.async_chunk).toBe(false);
  });

  it('bagel_think locations of inherited flat keys point into bagel.yaml', async () => {
    const think = await loadUpstream('bagel_think.yaml');
    const s0 = think.stages[0];
    expect(at(s0!.locations.at('engine_args.max_num_seqs'))).toBe('bagel.yaml:14:19');
    expect(at(s0!.locations.at('engine_args.gpu_memory_utilization'))).toBe('bagel.yaml:15:29');
    expect(at(s0!.locations.at('runtime.devices'))).toBe('bagel.yaml:18:14');
    expect(at(s0!.locations.at('default_sampling_params.seed'))).toBe('bagel.yaml:24:13');
    expect(at(s0!.locations.at('stage_id'))).toBe('bagel.yaml:12:15');
    // async_chunk comes from the base file's top level.
    expect(at(s0!.locations.at('engine_args.async_chunk'))).toBe('bagel.yaml:9:14');
    expect(at(think.stages[1]!.locations.at('input_connectors.from_stage_0'))).toBe('bagel.yaml:36:21');
    // Values set by the registered pipeline have no source: they fall back to the stage.
    expect(s0!.locations.has('engine_args.worker_type')).toBe(false);
    expect(at(s0!.locations.at('engine_args.worker_type'))).toBe('bagel.yaml:12:5');
    // Top-level keys: `pipeline` from the overlay, connectors from the base.
    expect(at(think.locations.at('pipeline'))).toBe('bagel_think.yaml:16:11');
    expect(at(think.locations.at('connectors.rdma_connector'))).toBe('bagel.yaml:46:3');
    expect(at(think.locations.at('connectors.rdma_connector.extra.zmq_port'))).toBe('bagel.yaml:50:17');
    expect(at(think.locations.at('async_chunk'))).toBe('bagel.yaml:9:14');
  });
});

describe('glm_image (deploy, platforms)', () => {
  it('on cuda uses the base stage settings', async () => {
    const config = await loadUpstream('glm_image.yaml');
    const [s0, s1] = config.stages;
    expect(s0?.runtime.devices).toBe('0');
    expect(s0?.runtime.env).toEqual({});
    expect(s0?.engine_args.tensor_parallel_size).toBeUndefined();
    expect(s0?.engine_args.enforce_eager).toBe(false);
    expect(s1?.runtime.devices).toBe('1');
    expect(s1?.stage_type).toBe('diffusion');
    expect(s1?.engine_input_source).toEqual([0]);
    expect(s1?.final_output_type).toBe('image');
  });

  it('on npu applies the npu section: devices, env (stringified), engine fields', async () => {
    const config = await loadUpstream('glm_image.yaml', { platform: 'npu' });
    const [s0, s1] = config.stages;
    expect(s0?.runtime.devices).toBe('0,1,2,3');
    expect(s0?.runtime.env).toEqual({
      HCCL_IF_BASE_PORT: '23000',
      HCCL_HOST_SOCKET_PORT_RANGE: '23000-23199',
      HCCL_NPU_SOCKET_PORT_RANGE: '23200-23399',
    });
    expect(s0?.engine_args).toMatchObject({
      tensor_parallel_size: 4,
      enforce_eager: false,
      async_scheduling: true,
      enable_prefix_caching: true,
      distributed_executor_backend: 'mp',
      compilation_config: { cudagraph_capture_sizes: [1, 2], cudagraph_mode: 'FULL_DECODE_ONLY' },
      worker_cls: 'vllm_omni.platforms.npu.worker.npu_ar_worker.NPUARWorker',
      // untouched by the platform section
      max_num_seqs: 1,
      gpu_memory_utilization: 0.6,
    });
    expect(s1?.runtime.env.HCCL_IF_BASE_PORT).toBe('24000');
    expect(s1?.engine_args.parallel_config).toEqual({
      tensor_parallel_size: 1,
      sequence_parallel_size: 4,
      ulysses_degree: 4,
      ring_degree: 1,
    });
  });

  it('on npu records platform-section locations, base locations elsewhere', async () => {
    const config = await loadUpstream('glm_image.yaml', { platform: 'npu' });
    const s0 = config.stages[0]!;
    expect(at(s0.locations.at('runtime.devices'))).toBe('glm_image.yaml:54:18');
    expect(at(s0.locations.at('runtime.env.HCCL_IF_BASE_PORT'))).toBe('glm_image.yaml:60:30');
    expect(at(s0.locations.at('engine_args.tensor_parallel_size'))).toBe('glm_image.yaml:67:31');
    expect(at(s0.locations.at('engine_args.enforce_eager'))).toBe('glm_image.yaml:64:24');
    expect(at(s0.locations.at('engine_args.compilation_config.cudagraph_mode'))).toBe('glm_image.yaml:71:27');
    expect(at(s0.locations.at('engine_args.max_num_seqs'))).toBe('glm_image.yaml:18:19');
    expect(at(config.stages[1]!.locations.at('engine_args.parallel_config.ulysses_degree'))).toBe(
      'glm_image.yaml:84:27',
    );
  });
});

describe('qwen3_omni_moe (deploy, registry, async_chunk)', () => {
  it('builds thinker → talker → code2wav', async () => {
    const config = await loadUpstream('qwen3_omni_moe.yaml');
    expect(config.topology).toBe('registry');
    expect(config.async_chunk).toBe(true);
    const [t, k, c] = config.stages;
    expect(t).toMatchObject({
      stage_type: 'llm',
      is_comprehension: true,
      final_output: true,
      final_output_type: 'text',
      engine_input_source: [],
    });
    expect(t?.engine_args).toMatchObject({
      worker_type: 'ar',
      model_stage: 'thinker',
      engine_output_type: 'latent',
      async_chunk: true,
    });
    expect(k).toMatchObject({ stage_type: 'llm', final_output: false, engine_input_source: [0] });
    expect(k?.engine_args).toMatchObject({ worker_type: 'ar', model_stage: 'talker', engine_output_type: 'latent' });
    expect(c).toMatchObject({
      stage_type: 'llm',
      final_output: true,
      final_output_type: 'audio',
      engine_input_source: [1],
    });
    expect(c?.engine_args).toMatchObject({
      worker_type: 'generation',
      model_stage: 'code2wav',
      async_scheduling: false,
      enable_chunked_prefill: false,
    });
    expect(c?.input_connectors).toEqual({ from_stage_1: 'connector_of_shared_memory' });
    expect(config.connectors.connector_of_shared_memory?.extra).toEqual({
      initial_codec_chunk_frames: 4,
      codec_chunk_frames: 25,
      codec_left_context_frames: 25,
    });
  });

  it('on xpu passes unknown platform keys through as engine args and on rocm flips eager only on stage 2', async () => {
    const xpu = await loadUpstream('qwen3_omni_moe.yaml', { platform: 'xpu' });
    expect(xpu.stages.map((s) => s.engine_args.max_cudagraph_capture_size)).toEqual([0, 0, 0]);
    expect(xpu.stages.map((s) => s.runtime.devices)).toEqual(['0,1,2,3', '4', '4']);
    expect(at(xpu.stages[1]!.locations.at('engine_args.max_cudagraph_capture_size'))).toBe(
      'qwen3_omni_moe.yaml:107:37',
    );
    const rocm = await loadUpstream('qwen3_omni_moe.yaml', { platform: 'rocm' });
    expect(rocm.stages.map((s) => s.engine_args.enforce_eager)).toEqual([undefined, undefined, true]);
  });
});

describe('wan2_2_ti2v_dit_fp8 (legacy, deprecated keys)', () => {
  it('warns for runtime.max_batch_size, runtime.enabled and runtime.defaults at their lines', async () => {
    const config = await loadUpstream('wan2_2_ti2v_dit_fp8.yaml');
    expect(config.warnings.map((w) => [w.code, at(w)])).toEqual([
      ['OMNI_WARN_DEPRECATED_KEY', 'wan2_2_ti2v_dit_fp8.yaml:13:7'],
      ['OMNI_WARN_DEPRECATED_KEY', 'wan2_2_ti2v_dit_fp8.yaml:38:3'],
      ['OMNI_WARN_DEPRECATED_KEY', 'wan2_2_ti2v_dit_fp8.yaml:39:3'],
    ]);
    expect(config.warnings[0]?.message).toContain('max_batch_size');
    expect(config.warnings[0]?.hint).toContain('engine_args.max_num_seqs');
    expect(config.warnings[2]?.message).toContain('runtime.defaults');
  });

  it('keeps the diffusion stage as written and does not copy async_chunk into it', async () => {
    const config = await loadUpstream('wan2_2_ti2v_dit_fp8.yaml');
    expect(config.schema).toBe('legacy');
    expect(config.topology).toBe('file');
    const [s] = config.stages;
    expect(s).toMatchObject({
      stage_type: 'diffusion',
      final_output: true,
      final_output_type: 'video',
      is_comprehension: false,
    });
    expect(s?.runtime).toMatchObject({ devices: '0', num_replicas: 1, process: true });
    expect(s?.engine_args).not.toHaveProperty('async_chunk');
    expect(s?.engine_args.parallel_config).toEqual({ tensor_parallel_size: 1 });
    expect(at(s!.locations.at('engine_args.parallel_config.tensor_parallel_size'))).toBe(
      'wan2_2_ti2v_dit_fp8.yaml:29:31',
    );
  });
});

describe('qwen2_5_omni_multiconnector (legacy, named connectors)', () => {
  it('keeps named connectors, edges and per-stage connector references', async () => {
    const config = await loadUpstream('qwen2_5_omni_multiconnector.yaml');
    expect(Object.keys(config.connectors)).toEqual([
      'mooncake_connector',
      'yuanrong_connector',
      'shared_memory_connector',
    ]);
    expect(config.connectors.mooncake_connector).toEqual({
      name: 'MooncakeStoreConnector',
      extra: {
        host: '127.0.0.1',
        metadata_server: 'http://10.90.67.86:8080/metadata',
        master: '10.90.67.86:50051',
        segment: 512000000,
        localbuf: 64000000,
        proto: 'tcp',
      },
    });
    expect(config.edges).toEqual([
      { from: 0, to: 1 },
      { from: 1, to: 2 },
    ]);
    expect(config.stages.map((s) => [s.input_connectors, s.output_connectors])).toEqual([
      [{}, { to_stage_1: 'mooncake_connector' }],
      [{ from_stage_0: 'mooncake_connector' }, { to_stage_2: 'mooncake_connector' }],
      [{ from_stage_1: 'mooncake_connector' }, {}],
    ]);
    expect(at(config.locations.at('connectors.yuanrong_connector'))).toBe('qwen2_5_omni_multiconnector.yaml:118:5');
    expect(at(config.locations.at('edges.1'))).toBe('qwen2_5_omni_multiconnector.yaml:134:7');
    expect(at(config.locations.at('edges.1.to'))).toBe('qwen2_5_omni_multiconnector.yaml:135:11');
    expect(at(config.stages[1]!.locations.at('output_connectors.to_stage_2'))).toBe(
      'qwen2_5_omni_multiconnector.yaml:67:19',
    );
    expect(config.warnings.map((w) => [w.code, at(w)])).toEqual([
      ['OMNI_WARN_DEPRECATED_KEY', 'qwen2_5_omni_multiconnector.yaml:102:3'],
    ]);
  });

  it('copies the (absent → false) top-level async_chunk into llm stages with a runtime block', async () => {
    const config = await loadUpstream('qwen2_5_omni_multiconnector.yaml');
    expect(config.async_chunk).toBe(false);
    expect(config.stages.map((s) => s.engine_args.async_chunk)).toEqual([false, false, false]);
    expect(config.stages.map((s) => s.final_output)).toEqual([true, false, true]);
    expect(config.stages[2]?.engine_args.worker_type).toBe('generation');
    expect(config.stages[1]?.custom_process_input_func).toBe(
      'vllm_omni.model_executor.stage_input_processors.qwen2_5_omni.thinker2talker',
    );
  });
});

describe('the copies shipped with the upstream-dry-run example', () => {
  it.runIf(existsSync(SHARED_FIXTURES))('are byte-identical to shared/fixtures', () => {
    const shipped = readdirSync(REPO_FIXTURES).sort();
    expect(shipped).toEqual(readdirSync(SHARED_FIXTURES).sort());
    for (const f of shipped) {
      expect(readFileSync(join(REPO_FIXTURES, f), 'utf8'), f).toBe(readFileSync(join(SHARED_FIXTURES, f), 'utf8'));
    }
  });
});
