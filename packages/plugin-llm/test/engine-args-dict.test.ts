import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OmniError } from '@omnistage/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildEngineArgsDict } from '../src/engine-args-dict.js';
import type { BuildEngineArgsOptions } from '../src/engine-args-dict.js';
import { FILE, stageAt, thrown } from './helpers.js';

const GPU_AR = 'vllm_omni.worker.gpu_ar_worker.GPUARWorker';
const GPU_GEN = 'vllm_omni.worker.gpu_generation_worker.GPUGenerationWorker';

/** Options with an empty base env and a file system where nothing exists, unless overridden. */
function opts(extra: Partial<BuildEngineArgsOptions> = {}): BuildEngineArgsOptions {
  return { model: '/models/m', platform: 'cuda', baseEnv: {}, modelDirExists: () => false, ...extra };
}

describe('buildEngineArgsDict (b.22)', () => {
  it('removes a null tensor_parallel_size from the result only, leaving the stage config untouched', () => {
    const stage = stageAt({ stage_id: 0, engine_args: { tensor_parallel_size: null, max_num_seqs: 4 } });
    const { engineArgs } = buildEngineArgsDict(stage, opts());
    expect(Object.hasOwn(engineArgs, 'tensor_parallel_size')).toBe(false);
    expect(engineArgs['max_num_seqs']).toBe(4);
    expect(Object.hasOwn(stage.engine_args, 'tensor_parallel_size')).toBe(true);
    expect(stage.engine_args['tensor_parallel_size']).toBeNull();
  });

  it('keeps a non-null tensor_parallel_size', () => {
    const { engineArgs } = buildEngineArgsDict(
      stageAt({ stage_id: 0, engine_args: { tensor_parallel_size: 2 } }),
      opts(),
    );
    expect(engineArgs['tensor_parallel_size']).toBe(2);
  });

  it('never mutates the stage config (deep)', () => {
    const stage = stageAt({
      stage_id: 1,
      engine_args: {
        tensor_parallel_size: null,
        model: 'stage-model',
        stage_id: null,
        model_subdir: 'thinker',
        worker_type: 'generation',
        async_chunk: true,
        hf_overrides: { architectures: ['X'] },
      },
      default_sampling_params: { extra_args: { cfg: 1 } },
    });
    const before = JSON.stringify({ e: stage.engine_args, s: stage.default_sampling_params });
    const { engineArgs } = buildEngineArgsDict(stage, opts({ stageConnectorSpec: { name: 'C', extra: { a: 1 } } }));
    expect(JSON.stringify({ e: stage.engine_args, s: stage.default_sampling_params })).toBe(before);
    // the nested object in the result is a copy too
    expect(engineArgs['hf_overrides']).toEqual({ architectures: ['X'] });
    expect(engineArgs['hf_overrides']).not.toBe(stage.engine_args['hf_overrides']);
  });

  it('overwrites model and stage_id from the arguments and the stage config', () => {
    const stage = stageAt({ stage_id: 5, engine_args: { model: 'from-yaml', stage_id: null } });
    const { engineArgs } = buildEngineArgsDict(stage, opts({ model: '/models/cli' }));
    expect(engineArgs['model']).toBe('/models/cli');
    expect(engineArgs['stage_id']).toBe(5);
  });

  it('keeps unknown keys (they are filtered later by the engine)', () => {
    const { engineArgs } = buildEngineArgsDict(
      stageAt({ stage_id: 0, engine_args: { some_future_flag: 'x' } }),
      opts(),
    );
    expect(engineArgs['some_future_flag']).toBe('x');
  });

  describe('tokenizer precedence', () => {
    it('a stage tokenizer beats the CLI tokenizer', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { tokenizer: '/stage-tok' } });
      expect(buildEngineArgsDict(stage, opts({ cliTokenizer: '/cli-tok' })).engineArgs['tokenizer']).toBe('/stage-tok');
    });

    it('a stage tokenizer_subdir beats the CLI tokenizer', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { tokenizer_subdir: 'tok' } });
      const { engineArgs } = buildEngineArgsDict(stage, opts({ cliTokenizer: '/cli-tok', modelDirExists: () => true }));
      expect(engineArgs['tokenizer']).toBe(path.join('/models/m', 'tok'));
    });

    it('the CLI tokenizer beats the tokenizer inferred from model_subdir', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_subdir: 'thinker' } });
      const { engineArgs } = buildEngineArgsDict(stage, opts({ cliTokenizer: '/cli-tok', modelDirExists: () => true }));
      expect(engineArgs['model']).toBe(path.join('/models/m', 'thinker'));
      expect(engineArgs['tokenizer']).toBe('/cli-tok');
    });

    it('the CLI tokenizer applies when the stage has no tokenizer at all', () => {
      const { engineArgs } = buildEngineArgsDict(stageAt({ stage_id: 0 }), opts({ cliTokenizer: '/cli-tok' }));
      expect(engineArgs['tokenizer']).toBe('/cli-tok');
    });

    it("tokenizer_subdir '' means the base model directory", () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_subdir: 'talker', tokenizer_subdir: '' } });
      const { engineArgs } = buildEngineArgsDict(stage, opts({ modelDirExists: () => true }));
      expect(engineArgs['model']).toBe(path.join('/models/m', 'talker'));
      expect(engineArgs['tokenizer']).toBe('/models/m');
      expect(Object.hasOwn(engineArgs, 'model_subdir')).toBe(false);
      expect(Object.hasOwn(engineArgs, 'tokenizer_subdir')).toBe(false);
    });

    it('an explicit tokenizer key (even null) blocks the legacy base-directory inference', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_subdir: 'talker', tokenizer: null } });
      const { engineArgs } = buildEngineArgsDict(stage, opts({ modelDirExists: () => true }));
      expect(engineArgs['tokenizer']).toBeNull();
    });

    it('an empty model_subdir leaves the model unchanged', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_subdir: '' } });
      const { engineArgs, warnings } = buildEngineArgsDict(stage, opts({ modelDirExists: () => true }));
      expect(engineArgs['model']).toBe('/models/m');
      expect(Object.hasOwn(engineArgs, 'tokenizer')).toBe(false);
      expect(warnings).toEqual([]);
    });
  });

  describe('model_subdir against a real directory', () => {
    let dir = '';
    beforeEach(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'omnistage-llm-'));
      await mkdir(path.join(dir, 'thinker'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('joins model_subdir onto an existing local model directory (default fs check)', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_subdir: 'thinker' } });
      const { model: _m, modelDirExists: _e, ...rest } = opts();
      const { engineArgs, warnings } = buildEngineArgsDict(stage, { ...rest, model: dir });
      expect(engineArgs['model']).toBe(path.join(dir, 'thinker'));
      expect(engineArgs['tokenizer']).toBe(dir);
      expect(warnings).toEqual([]);
    });

    it('an absolute model_subdir replaces the base (os.path.join semantics)', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_subdir: '/elsewhere/w' } });
      const { model: _m, modelDirExists: _e, ...rest } = opts();
      expect(buildEngineArgsDict(stage, { ...rest, model: dir }).engineArgs['model']).toBe('/elsewhere/w');
    });
  });

  it('warns and uses the model as-is when it is not a local directory', () => {
    const stage = stageAt(
      { stage_id: 2, engine_args: { model_subdir: 'thinker' } },
      { 'engine_args.model_subdir': [14, 21] },
    );
    const seen: string[] = [];
    const { engineArgs, warnings } = buildEngineArgsDict(
      stage,
      opts({ model: 'Qwen/Qwen2.5-Omni-7B', modelDirExists: (p) => (seen.push(p), false) }),
    );
    expect(seen).toEqual(['Qwen/Qwen2.5-Omni-7B']);
    expect(engineArgs['model']).toBe(`Qwen/Qwen2.5-Omni-7B${path.sep}thinker`);
    expect(engineArgs['tokenizer']).toBe('Qwen/Qwen2.5-Omni-7B');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ code: 'OMNI_WARN_MODEL_SUBDIR_UNRESOLVED', file: FILE, line: 14, col: 21 });
    expect(warnings[0]?.message).toContain('Qwen/Qwen2.5-Omni-7B');
    expect(warnings[0]?.hint).toBeTruthy();
  });

  it('does not touch the file system when there is no sub-directory', () => {
    const { warnings } = buildEngineArgsDict(
      stageAt({ stage_id: 0 }),
      opts({
        modelDirExists: () => {
          throw new Error('called');
        },
      }),
    );
    expect(warnings).toEqual([]);
  });

  it('rejects a non-string model_subdir at its location', () => {
    const stage = stageAt({ stage_id: 0, engine_args: { model_subdir: 3 } }, { 'engine_args.model_subdir': [8, 7] });
    const err = thrown(() => buildEngineArgsDict(stage, opts())) as OmniError;
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.location).toEqual({ file: FILE, line: 8, col: 7 });
  });

  describe('async_chunk', () => {
    it('copies the connector spec when async_chunk is truthy', () => {
      const spec = { name: 'SharedMemoryConnector', extra: { shm_threshold_bytes: 65536 } };
      const { engineArgs } = buildEngineArgsDict(
        stageAt({ stage_id: 1, engine_args: { async_chunk: true } }),
        opts({ stageConnectorSpec: spec }),
      );
      expect(engineArgs['stage_connector_spec']).toEqual(spec);
      expect(engineArgs['stage_connector_spec']).not.toBe(spec);
      (engineArgs['stage_connector_spec'] as { extra: Record<string, unknown> }).extra['x'] = 1;
      expect(spec.extra).toEqual({ shm_threshold_bytes: 65536 });
    });

    it('uses {} when no spec is given', () => {
      const { engineArgs } = buildEngineArgsDict(stageAt({ stage_id: 1, engine_args: { async_chunk: true } }), opts());
      expect(engineArgs['stage_connector_spec']).toEqual({});
    });

    it('adds no spec when async_chunk is falsy', () => {
      for (const async_chunk of [false, null, 0]) {
        const { engineArgs } = buildEngineArgsDict(
          stageAt({ stage_id: 1, engine_args: { async_chunk } }),
          opts({ stageConnectorSpec: { name: 'C' } }),
        );
        expect(Object.hasOwn(engineArgs, 'stage_connector_spec')).toBe(false);
      }
    });
  });

  describe('worker resolution and generation defaults', () => {
    it('resolves worker_cls for the platform', () => {
      const { engineArgs } = buildEngineArgsDict(
        stageAt({ stage_id: 0, engine_args: { worker_type: 'AR' } }),
        opts({ platform: 'xpu' }),
      );
      expect(engineArgs['worker_cls']).toBe('vllm_omni.platforms.xpu.worker.xpu_ar_worker.XPUARWorker');
    });

    it('an explicit worker_cls wins', () => {
      const { engineArgs } = buildEngineArgsDict(
        stageAt({ stage_id: 0, engine_args: { worker_type: 'ar', worker_cls: 'x.W' } }),
        opts(),
      );
      expect(engineArgs['worker_cls']).toBe('x.W');
    });

    it('an unknown worker_type fails at the YAML line of worker_type', () => {
      const stage = stageAt(
        { stage_id: 4, engine_args: { worker_type: 'arr' } },
        { 'engine_args.worker_type': [22, 19] },
      );
      const err = thrown(() => buildEngineArgsDict(stage, opts())) as OmniError;
      expect(err).toBeInstanceOf(OmniError);
      expect(err.code).toBe('OMNI_CONFIG_INVALID');
      expect(err.location).toEqual({ file: FILE, line: 22, col: 19 });
      expect(err.hint).toMatch(/'ar'.*'generation'/s);
      expect(err.context.stage_id).toBe(4);
    });

    it('does not resolve workers for diffusion stages', () => {
      const stage = stageAt({ stage_id: 0, stage_type: 'diffusion', engine_args: { worker_type: 'whatever' } });
      const { engineArgs } = buildEngineArgsDict(stage, opts());
      expect(Object.hasOwn(engineArgs, 'worker_cls')).toBe(false);
    });

    it("applies generation defaults for exactly 'generation'", () => {
      const { engineArgs } = buildEngineArgsDict(
        stageAt({ stage_id: 2, engine_args: { worker_type: 'generation' } }),
        opts(),
      );
      expect(engineArgs['worker_cls']).toBe(GPU_GEN);
      expect(engineArgs['disable_hybrid_kv_cache_manager']).toBe(true);
      expect(engineArgs['enable_prefix_caching']).toBe(false);
    });

    it("does not apply them for 'Generation' (case-sensitive), though the worker class resolves", () => {
      const { engineArgs } = buildEngineArgsDict(
        stageAt({ stage_id: 2, engine_args: { worker_type: 'Generation' } }),
        opts(),
      );
      expect(engineArgs['worker_cls']).toBe(GPU_GEN);
      expect(Object.hasOwn(engineArgs, 'disable_hybrid_kv_cache_manager')).toBe(false);
      expect(Object.hasOwn(engineArgs, 'enable_prefix_caching')).toBe(false);
    });

    it('generation defaults never override explicit values (setdefault)', () => {
      const stage = stageAt({
        stage_id: 2,
        engine_args: { worker_type: 'generation', enable_prefix_caching: true, disable_hybrid_kv_cache_manager: null },
      });
      const { engineArgs } = buildEngineArgsDict(stage, opts());
      expect(engineArgs['enable_prefix_caching']).toBe(true);
      expect(engineArgs['disable_hybrid_kv_cache_manager']).toBeNull();
    });

    it('ar stages get no generation defaults', () => {
      const { engineArgs } = buildEngineArgsDict(stageAt({ stage_id: 0, engine_args: { worker_type: 'ar' } }), opts());
      expect(engineArgs['worker_cls']).toBe(GPU_AR);
      expect(Object.hasOwn(engineArgs, 'enable_prefix_caching')).toBe(false);
    });
  });

  it.each([
    [{}, false],
    [{ extra_args: {} }, false],
    [{ extra_args: null }, false],
    [{ extra_args: { cfg_text_scale: 4 } }, true],
    [{ temperature: 0.2 }, false],
  ])('has_sampling_extra_args for %j is %s', (default_sampling_params, expected) => {
    const { engineArgs } = buildEngineArgsDict(stageAt({ stage_id: 0, default_sampling_params }), opts());
    expect(engineArgs['has_sampling_extra_args']).toBe(expected);
  });

  describe('environment additions (returned, never written to process.env)', () => {
    const QWEN3 = 'Qwen3OmniMoeForConditionalGeneration';

    it('Qwen3-Omni-MoE gets VLLM_USE_FLASHINFER_MOE_FP16=0 and process.env stays untouched', () => {
      const before = { ...process.env };
      const { env } = buildEngineArgsDict(stageAt({ stage_id: 0, engine_args: { model_arch: QWEN3 } }), opts());
      expect(env).toEqual({ VLLM_USE_FLASHINFER_MOE_FP16: '0' });
      expect(process.env).toEqual(before);
    });

    it('a value in the base env wins, even an empty one', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_arch: QWEN3 } });
      expect(buildEngineArgsDict(stage, opts({ baseEnv: { VLLM_USE_FLASHINFER_MOE_FP16: '1' } })).env).toEqual({});
      expect(buildEngineArgsDict(stage, opts({ baseEnv: { VLLM_USE_FLASHINFER_MOE_FP16: '' } })).env).toEqual({});
    });

    it('other architectures get nothing', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_arch: 'Qwen2_5OmniForConditionalGeneration' } });
      expect(buildEngineArgsDict(stage, opts()).env).toEqual({});
    });

    it('a non-null max_model_len gets VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 unless set non-empty', () => {
      const before = { ...process.env };
      const stage = stageAt({ stage_id: 0, engine_args: { max_model_len: 65536 } });
      expect(buildEngineArgsDict(stage, opts()).env).toEqual({ VLLM_ALLOW_LONG_MAX_MODEL_LEN: '1' });
      expect(buildEngineArgsDict(stage, opts({ baseEnv: { VLLM_ALLOW_LONG_MAX_MODEL_LEN: '' } })).env).toEqual({
        VLLM_ALLOW_LONG_MAX_MODEL_LEN: '1',
      });
      expect(buildEngineArgsDict(stage, opts({ baseEnv: { VLLM_ALLOW_LONG_MAX_MODEL_LEN: '0' } })).env).toEqual({});
      expect(buildEngineArgsDict(stageAt({ stage_id: 0, engine_args: { max_model_len: null } }), opts()).env).toEqual(
        {},
      );
      expect(process.env).toEqual(before);
    });

    it('both at once', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { model_arch: QWEN3, max_model_len: 32768 } });
      expect(buildEngineArgsDict(stage, opts()).env).toEqual({
        VLLM_USE_FLASHINFER_MOE_FP16: '0',
        VLLM_ALLOW_LONG_MAX_MODEL_LEN: '1',
      });
    });

    it('reads process.env when no base env is given', () => {
      const stage = stageAt({ stage_id: 0, engine_args: { max_model_len: 10 } });
      const { baseEnv: _b, ...rest } = opts();
      const had = Object.hasOwn(process.env, 'VLLM_ALLOW_LONG_MAX_MODEL_LEN');
      const expected = process.env['VLLM_ALLOW_LONG_MAX_MODEL_LEN'] ? {} : { VLLM_ALLOW_LONG_MAX_MODEL_LEN: '1' };
      expect(buildEngineArgsDict(stage, rest).env).toEqual(expected);
      expect(Object.hasOwn(process.env, 'VLLM_ALLOW_LONG_MAX_MODEL_LEN')).toBe(had);
    });
  });
});
