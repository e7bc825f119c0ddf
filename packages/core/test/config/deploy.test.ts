import { describe, expect, it } from 'vitest';
import { loadPipelineConfig, type LoadPipelineOptions } from '../../src/config/load-pipeline.js';
import { PipelineRegistry } from '../../src/config/pipelines.js';
import { at, rejection, TEST_CHAIN, testRegistry, yaml } from './helpers.js';

const registry = testRegistry();
const load = (text: string, options: LoadPipelineOptions = {}) =>
  loadPipelineConfig({ text, path: '/cfg/custom.yaml' }, { pipelines: registry, ...options });
/** Synthetic two-stage files: the test chain (0 → 1) gives them their topology. */
const loadChain = (text: string) => load(text, { pipeline: TEST_CHAIN.name });

describe('deploy stage conversion', () => {
  it('routes flat keys: runtime keys to runtime, connectors and sampling params to the stage, the rest to engine_args', async () => {
    const config = await loadChain(yaml`
      stages:
        - stage_id: 0
          devices: 1
          num_replicas: 2
          env: { X: yes }
          restart: { policy: on-failure, max_restarts: 1 }
          engine: reference
          tensor_parallel_size: 2
          omni_kv_config: { need_send_cache: true }
          default_sampling_params: { seed: 1 }
          output_connectors: { to_stage_1: { name: SharedMemoryConnector } }
        - stage_id: 1
    `);
    const s0 = config.stages[0]!;
    expect(s0.runtime).toEqual({
      process: true,
      devices: '1',
      num_replicas: 2,
      min_ready: 1,
      env: { X: 'yes' },
      requires_multimodal_data: false,
      restart: { policy: 'on-failure', max_restarts: 1, backoff_ms: 500 },
    });
    expect(s0.engine).toBe('reference');
    expect(s0.engine_args).toEqual({
      tensor_parallel_size: 2,
      omni_kv_config: { need_send_cache: true },
      async_chunk: true,
      model_stage: 'first',
    });
    expect(s0.default_sampling_params).toEqual({ seed: 1 });
    expect(s0.output_connectors).toEqual({ to_stage_1: { name: 'SharedMemoryConnector', extra: {} } });
    expect(at(s0.locations.at('engine_args.omni_kv_config.need_send_cache'))).toBe('custom.yaml:9:40');
    expect(at(s0.locations.at('runtime.restart.max_restarts'))).toBe('custom.yaml:6:50');
  });

  it('a nested engine_args block is deep-merged over flat keys (block scalars win); a nested runtime block wins over flat keys', async () => {
    const config = await loadChain(yaml`
      stages:
        - stage_id: 0
          max_num_seqs: 4
          hf_overrides: { a: 1, b: 1 }
          devices: "0"
          engine_args:
            max_num_seqs: 8
            hf_overrides: { b: 2 }
          runtime:
            devices: "3"
            num_replicas: 0
    `);
    const s0 = config.stages[0]!;
    expect(s0.engine_args).toMatchObject({ max_num_seqs: 8, hf_overrides: { a: 1, b: 2 } });
    expect(s0.runtime.devices).toBe('3');
    expect(s0.runtime.num_replicas).toBe(0);
    expect(at(s0.locations.at('engine_args.max_num_seqs'))).toBe('custom.yaml:7:21');
    expect(at(s0.locations.at('engine_args.hf_overrides.a'))).toBe('custom.yaml:4:24');
    expect(at(s0.locations.at('runtime.devices'))).toBe('custom.yaml:10:16');
  });

  it('applies pipeline-wide fields unless the stage sets them; null typed fields mean unset', async () => {
    const config = await loadChain(yaml`
      trust_remote_code: true
      dtype: float16
      active_stream_window: 4
      stages:
        - stage_id: 0
          dtype: bfloat16
          trust_remote_code: null
        - stage_id: 1
    `);
    expect(
      config.stages.map((s) => [
        s.engine_args.dtype,
        s.engine_args.trust_remote_code,
        s.engine_args.active_stream_window,
      ]),
    ).toEqual([
      ['bfloat16', true, 4],
      ['float16', true, 4],
    ]);
    expect(at(config.stages[0]!.locations.at('engine_args.trust_remote_code'))).toBe('custom.yaml:1:20');
    expect(at(config.stages[0]!.locations.at('engine_args.dtype'))).toBe('custom.yaml:6:12');
  });

  it('async_chunk defaults to true in deploy files and overrides the stage value', async () => {
    const config = await loadChain('stages:\n  - stage_id: 0\n    async_chunk: false\n');
    expect(config.async_chunk).toBe(true);
    expect(config.stages[0]?.engine_args.async_chunk).toBe(true);
    expect(config.stages[0]?.locations.has('engine_args.async_chunk')).toBe(false);
    const off = await loadChain('async_chunk: false\nstages:\n  - stage_id: 0\n');
    expect(off.stages[0]?.engine_args.async_chunk).toBe(false);
  });

  it('migrates deprecated runtime.max_batch_size to max_num_seqs, with a warning', async () => {
    const config = await loadChain(
      'stages:\n  - stage_id: 0\n    runtime:\n      max_batch_size: 6\n  - stage_id: 1\n    max_num_seqs: 2\n    runtime: { max_batch_size: 9 }\n',
    );
    expect(config.stages.map((s) => s.engine_args.max_num_seqs)).toEqual([6, 2]);
    const deprecated = config.warnings.filter((w) => w.code === 'OMNI_WARN_DEPRECATED_KEY');
    expect(deprecated.map(at)).toEqual(['custom.yaml:4:7', 'custom.yaml:7:16']);
  });
});

describe('deploy topology', () => {
  it('without a pipeline, a model or topology in the stages, is an error naming the nearest pipelines', async () => {
    const err = await rejection(
      loadPipelineConfig({ text: 'stages:\n  - stage_id: 0\n', path: '/cfg/glm_imag.yaml' }, { pipelines: registry }),
    );
    expect(err.code).toBe('OMNI_CONFIG_PIPELINE_UNRESOLVED');
    expect(at(err.location!)).toBe('glm_imag.yaml:1:1');
    expect(err.hint).toMatch(/^Nearest pipelines: glm_image\. Add `pipeline: NAME`/);
  });

  it('with nothing else selecting one, a file named after a registry key (or `<key>_<variant>`) selects it, with a located notice', async () => {
    for (const [path, rule] of [
      ['/cfg/glm_image.yaml', 'named after its registry key'],
      ['/cfg/glm_image_2gpu.yaml', 'named `glm_image_<variant>`'],
    ] as const) {
      const text = 'async_chunk: false\nstages:\n  - stage_id: 0\n';
      const config = await loadPipelineConfig({ text, path }, { pipelines: registry });
      expect([config.pipeline, config.pipeline_selected_by]).toEqual(['glm_image', 'file name']);
      const notice = config.warnings.find((w) => w.code === 'OMNI_WARN_PIPELINE_FROM_FILE_NAME');
      expect(notice?.message).toContain(rule);
      expect([notice?.file, notice?.line, notice?.col]).toEqual([path, 2, 1]);
    }
  });

  it('an unknown pipeline key is an error at the key with did-you-mean, never a fallback', async () => {
    const err = await rejection(load('pipeline: qwen3_omni_mo\nstages:\n  - stage_id: 0\n'));
    expect([err.code, at(err.location!)]).toEqual(['OMNI_CONFIG_PIPELINE_UNKNOWN', 'custom.yaml:1:11']);
    expect(err.hint).toMatch(/^Did you mean `qwen3_omni_moe`\?/);
  });

  it('`pipeline:` selects a registered topology; missing stages are created; a stage id outside it is an error at its line', async () => {
    const config = await load('pipeline: glm_image\nstages:\n  - stage_id: 1\n    devices: "1"\nasync_chunk: false\n');
    expect(config.topology).toBe('registry');
    expect(config.pipeline_selected_by).toBe('pipeline key');
    expect(
      config.stages.map((s) => [
        s.stage_id,
        s.stage_type,
        s.runtime.devices,
        s.engine_input_source,
        s.engine_args.model_stage,
      ]),
    ).toEqual([
      [0, 'llm', null, [], 'ar'],
      [1, 'diffusion', '1', [0], 'dit'],
    ]);
    expect(config.stages[0]?.engine_args.worker_type).toBe('ar');
    // The made-up stage 0 points at the `stages:` key.
    expect(at(config.stages[0]!.locations.at('stage_id'))).toBe('custom.yaml:2:1');
    const err = await rejection(
      load('pipeline: glm_image\nstages:\n  - stage_id: 1\n  - stage_id: 7\nasync_chunk: false\n'),
    );
    expect([err.code, at(err.location!)]).toEqual(['OMNI_CONFIG_INVALID', 'custom.yaml:4:15']);
    expect(err.message).toBe('Stage 7 is not a stage of pipeline `glm_image` (selected by pipeline key).');
  });

  it('--pipeline wins over the file key', async () => {
    const config = await load('pipeline: glm_image\nstages:\n  - stage_id: 0\n', { pipeline: 'hunyuan_image3_ar' });
    expect([config.pipeline, config.pipeline_selected_by, config.stages.length]).toEqual([
      'hunyuan_image3_ar',
      '--pipeline',
      1,
    ]);
  });

  it('pipeline-owned keys win over the deploy file, defaults do not', async () => {
    const config = await load(
      'pipeline: qwen3_omni_moe\nstages:\n  - stage_id: 0\n    worker_type: generation\n    engine_output_type: text\n',
    );
    expect(config.stages[0]?.engine_args).toMatchObject({
      worker_type: 'ar',
      engine_output_type: 'text',
      model_stage: 'thinker',
    });
  });

  it('async_chunk: true (the default) is refused where no stage can stream chunks, as upstream raises', async () => {
    const err = await rejection(load('pipeline: glm_image\nstages:\n  - stage_id: 1\n'));
    expect([err.code, at(err.location!)]).toEqual(['OMNI_CONFIG_INVALID', 'custom.yaml:2:1']);
    expect(err.message).toBe(
      'Pipeline `glm_image` has async_chunk true (the deploy default), but no stage of it declares an async-chunk next-stage processor.',
    );
    const explicit = await rejection(load('pipeline: glm_image\nasync_chunk: true\nstages:\n  - stage_id: 1\n'));
    expect(at(explicit.location!)).toBe('custom.yaml:2:14');
    // qwen3_tts streams (talker2code2wav_async_chunk), so the default is fine there.
    expect((await load('pipeline: qwen3_tts\nstages:\n  - stage_id: 0\n')).async_chunk).toBe(true);
  });

  it('the registry supplies sampling constraints over the file and processors by async_chunk', async () => {
    const text = (async: boolean) =>
      `pipeline: qwen3_tts\nasync_chunk: ${String(async)}\nstages:\n  - stage_id: 0\n    default_sampling_params: { detokenize: true, top_k: 5 }\n`;
    const on = await load(text(true));
    expect(on.stages[0]?.default_sampling_params).toEqual({ detokenize: false, top_k: 5, stop_token_ids: [2150] });
    expect(on.stages[0]?.engine_args.custom_process_next_stage_input_func).toMatch(/talker2code2wav_async_chunk$/);
    expect(on.stages[1]?.custom_process_input_func).toBeNull();
    expect(on.stages[1]?.extras).toEqual({ tts_args: { max_instructions_length: 500 } });
    const off = await load(text(false));
    expect(off.stages[0]?.engine_args.custom_process_next_stage_input_func).toMatch(/talker2code2wav_full_payload$/);
    expect(off.stages[1]?.custom_process_input_func).toMatch(/talker2code2wav_token_only$/);
  });

  it('a synthetic pipeline a test registers works the same (no per-file cases)', async () => {
    const own = PipelineRegistry.of([
      {
        name: 'tts',
        stages: [
          {
            stage_id: 0,
            model_stage: 'talker',
            stage_type: 'tts',
            engine_input_source: [],
            final_output: true,
            final_output_type: 'audio',
            is_comprehension: true,
          },
        ],
      },
    ]);
    const config = await load('pipeline: tts\nstages:\n  - stage_id: 0\n', { pipelines: own });
    expect(config.stages[0]).toMatchObject({ stage_type: 'tts', final_output_type: 'audio' });
  });

  it('a file that spells out its topology per stage needs no registry entry; the keys leave the engine args', async () => {
    const config = await load(yaml`
      stages:
        - stage_id: 0
          stage_type: diffusion
          final_output: true
          final_output_type: image
          max_num_seqs: 1
    `);
    expect(config.topology).toBe('file');
    expect(config.pipeline).toBeNull();
    expect(config.stages[0]).toMatchObject({
      stage_type: 'diffusion',
      final_output: true,
      final_output_type: 'image',
      engine_input_source: [],
    });
    expect(config.stages[0]?.engine_args).toEqual({ max_num_seqs: 1, async_chunk: true });
    expect(at(config.stages[0]!.locations.at('stage_type'))).toBe('custom.yaml:3:17');
  });
});

describe('deploy warnings', () => {
  it('warns about topology keys under a registered pipeline and likely typos in flat keys', async () => {
    const config = await loadChain(yaml`
      stages:
        - stage_id: 0
          stage_type: diffusion
          num_replica: 2
          max_num_seq: 3
          my_engine_flag: 1
        - stage_id: 1
    `);
    expect(config.warnings.map((w) => [w.code, at(w), w.hint])).toEqual([
      ['OMNI_WARN_POSSIBLE_TYPO', 'custom.yaml:4:5', 'Did you mean `num_replicas`?'],
      ['OMNI_WARN_POSSIBLE_TYPO', 'custom.yaml:5:5', 'Did you mean `max_num_seqs`?'],
      ['OMNI_WARN_DEPLOY_TOPOLOGY_KEY', 'custom.yaml:3:5', expect.stringContaining('drop `pipeline:`')],
    ]);
    // They are still engine args, as upstream treats them (engine_extras).
    expect(config.stages[0]?.stage_type).toBe('llm');
    expect(config.stages[0]?.engine_args).toMatchObject({ stage_type: 'diffusion', num_replica: 2, my_engine_flag: 1 });
  });
});

describe('platforms', () => {
  const text = yaml`
    pipeline: bagel
    stages:
      - stage_id: 0
        devices: "0"
        env: { A: 1, B: 1 }
        default_sampling_params: { seed: 1, top_k: 1 }
    platforms:
      rocm:
        stages:
          - stage_id: 0
            env: { B: 2, C: 3 }
            runtime: { num_replicas: 2 }
            default_sampling_params: { top_k: 9 }
            attention_backend: TRITON_ATTN
          - stage_id: 4
            devices: "1"
      nup:
        stages: []
    async_chunk: false
  `;

  it('applies only the chosen platform: env dict-merged, num_replicas honoured, other keys merged', async () => {
    const rocm = await load(text, { platform: 'rocm' });
    const s0 = rocm.stages[0]!;
    expect(s0.runtime.env).toEqual({ A: '1', B: '2', C: '3' });
    expect(s0.runtime.num_replicas).toBe(2);
    expect(s0.runtime.devices).toBe('0');
    expect(s0.default_sampling_params).toEqual(
      { seed: 1, top_k: 9, detokenize: true } /* bagel's sampling constraint */,
    );
    expect(s0.engine_args.attention_backend).toBe('TRITON_ATTN');
    expect(at(s0.locations.at('runtime.env.A'))).toBe('custom.yaml:5:15');
    expect(at(s0.locations.at('runtime.env.B'))).toBe('custom.yaml:11:19');

    const cuda = await load(text);
    expect(cuda.stages[0]?.runtime.env).toEqual({ A: '1', B: '1' });
    expect(cuda.stages[0]?.engine_args.attention_backend).toBeUndefined();
  });

  it('warns about unknown platform names and about patches for missing stages', async () => {
    const rocm = await load(text, { platform: 'rocm' });
    expect(rocm.warnings.map((w) => [w.code, at(w)])).toEqual([
      ['OMNI_WARN_UNKNOWN_PLATFORM', 'custom.yaml:17:3'],
      ['OMNI_WARN_PLATFORM_STAGE_UNKNOWN', 'custom.yaml:15:19'],
    ]);
    expect(rocm.warnings[0]?.hint).toMatch(/^Did you mean `npu`\?/);
  });
});
