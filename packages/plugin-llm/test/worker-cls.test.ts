import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { WORKER_CLASS_PATHS, resolveWorkerCls } from '../src/worker-cls.js';
import { FILE, stageAt, thrown } from './helpers.js';

const GPU_AR = 'vllm_omni.worker.gpu_ar_worker.GPUARWorker';
const GPU_GEN = 'vllm_omni.worker.gpu_generation_worker.GPUGenerationWorker';

describe('resolveWorkerCls (b.7)', () => {
  it.each([
    ['cuda', GPU_AR, GPU_GEN],
    ['rocm', GPU_AR, GPU_GEN],
    ['cpu', GPU_AR, GPU_GEN],
    [
      'npu',
      'vllm_omni.platforms.npu.worker.npu_ar_worker.NPUARWorker',
      'vllm_omni.platforms.npu.worker.npu_generation_worker.NPUGenerationWorker',
    ],
    [
      'xpu',
      'vllm_omni.platforms.xpu.worker.xpu_ar_worker.XPUARWorker',
      'vllm_omni.platforms.xpu.worker.xpu_generation_worker.XPUGenerationWorker',
    ],
  ] as const)('%s: ar and generation class paths', (platform, ar, gen) => {
    const a: Record<string, unknown> = { worker_type: 'ar' };
    const g: Record<string, unknown> = { worker_type: 'generation' };
    resolveWorkerCls(a, platform);
    resolveWorkerCls(g, platform);
    expect(a['worker_cls']).toBe(ar);
    expect(g['worker_cls']).toBe(gen);
    expect(WORKER_CLASS_PATHS[platform]).toEqual({ ar, generation: gen });
  });

  it("lower-cases worker_type ('AR', 'Generation')", () => {
    const a: Record<string, unknown> = { worker_type: 'AR' };
    const g: Record<string, unknown> = { worker_type: 'Generation' };
    resolveWorkerCls(a, 'cuda');
    resolveWorkerCls(g, 'cuda');
    expect(a['worker_cls']).toBe(GPU_AR);
    expect(g['worker_cls']).toBe(GPU_GEN);
    // worker_type itself is left as written
    expect(a['worker_type']).toBe('AR');
  });

  it('keeps an explicit worker_cls', () => {
    const a: Record<string, unknown> = { worker_type: 'ar', worker_cls: 'my.Worker' };
    resolveWorkerCls(a, 'cuda');
    expect(a['worker_cls']).toBe('my.Worker');
  });

  it('explicit worker_cls wins even over an unknown worker_type (checked first, like upstream)', () => {
    const a: Record<string, unknown> = { worker_type: 'bogus', worker_cls: 'my.Worker' };
    expect(() => resolveWorkerCls(a, 'cuda')).not.toThrow();
  });

  it("resolves when worker_cls is 'auto' or null", () => {
    const a: Record<string, unknown> = { worker_type: 'ar', worker_cls: 'auto' };
    const b: Record<string, unknown> = { worker_type: 'ar', worker_cls: null };
    resolveWorkerCls(a, 'npu');
    resolveWorkerCls(b, 'npu');
    expect(a['worker_cls']).toBe(WORKER_CLASS_PATHS.npu.ar);
    expect(b['worker_cls']).toBe(WORKER_CLASS_PATHS.npu.ar);
  });

  it.each([[undefined], [null], ['']])('does nothing when worker_type is %j', (wt) => {
    const a: Record<string, unknown> = wt === undefined ? {} : { worker_type: wt };
    const before = { ...a };
    resolveWorkerCls(a, 'cuda');
    expect(a).toEqual(before);
  });

  it('rejects an unknown worker_type at its YAML line with the valid types in the hint', () => {
    const stage = stageAt(
      { stage_id: 7, engine_args: { worker_type: 'Generatoin' } },
      { 'engine_args.worker_type': [12, 20] },
    );
    const args: Record<string, unknown> = { ...stage.engine_args, stage_id: 7 };
    const err = thrown(() => resolveWorkerCls(args, 'cuda', () => stage.locations.at('engine_args.worker_type')));
    expect(err).toBeInstanceOf(OmniError);
    const e = err as OmniError;
    expect(e.code).toBe('OMNI_CONFIG_INVALID');
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain("'generatoin'");
    expect(e.location).toEqual({ file: FILE, line: 12, col: 20 });
    expect(e.hint).toContain("'ar'");
    expect(e.hint).toContain("'generation'");
    expect(e.hint).toContain("Did you mean 'generation'?");
    expect(e.context.stage_id).toBe(7);
    expect(args['worker_cls']).toBeUndefined();
  });

  it('rejects a non-string worker_type by its text (Python str())', () => {
    const err = thrown(() => resolveWorkerCls({ worker_type: true }, 'cuda')) as OmniError;
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toContain("'true'");
  });
});
