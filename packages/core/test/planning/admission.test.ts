import { describe, expect, it } from 'vitest';
import type { SourceLocation } from '../../src/errors.js';
import { checkAdmission, type AdmissionReplica } from '../../src/planning/admission.js';
import { catchOmni } from './helpers.js';

function r(stage_id: number, physical: string[] | null, gmu?: unknown, replica_id = 0): AdmissionReplica {
  return {
    stage_id,
    replica_id,
    physical_devices: physical,
    engine_args: gmu === undefined ? {} : { gpu_memory_utilization: gmu },
  };
}

const locate = (stageId: number): SourceLocation => ({ file: 'p.yaml', line: 10 + stageId, col: 5 });

describe('checkAdmission', () => {
  it('admits 0.6 + 0.4 on one device (float tolerance)', () => {
    expect(checkAdmission([r(0, ['0'], 0.6), r(1, ['0'], 0.4)])).toEqual([]);
    // 0.34 + 0.56 + 0.1 is 1.0000000000000002 in binary floating point.
    expect(checkAdmission([r(0, ['0'], 0.34), r(1, ['0'], 0.56), r(2, ['0'], 0.1)])).toEqual([]);
  });

  it('fails with OMNI_PLAN_OVERCOMMIT naming device, replicas and sum', () => {
    const err = catchOmni(() => checkAdmission([r(0, ['0'], 0.9), r(1, ['1'], 0.6), r(2, ['1'], 0.5)], { locate }));
    expect(err.code).toBe('OMNI_PLAN_OVERCOMMIT');
    expect(err.message).toBe(
      'GPU memory over-committed on 1 device(s): device 1: stage 1 replica 0 (0.6) + stage 2 replica 0 (0.5) = 1.10 > 1.00.',
    );
    expect(err.hint).toContain('--allow-overcommit');
    expect(err.location).toEqual(locate(1));
    expect(err.related).toEqual([locate(2)]);
    expect(err.context).toMatchObject({ device: '1', stage_ids: [1, 2], devices: ['1'] });
    expect(err.exitCode).toBe(2);
  });

  it('lists every over-committed device in numeric order', () => {
    const err = catchOmni(() => checkAdmission([r(0, ['10', '2'], 0.6), r(1, ['2'], 0.5), r(2, ['10'], 0.5, 1)]));
    expect(err.message).toBe(
      'GPU memory over-committed on 2 device(s): device 2: stage 0 replica 0 (0.6) + stage 1 replica 0 (0.5) = 1.10 > 1.00; ' +
        'device 10: stage 0 replica 0 (0.6) + stage 2 replica 1 (0.5) = 1.10 > 1.00.',
    );
  });

  it('allowOvercommit turns the error into one warning per device', () => {
    const warnings = checkAdmission([r(1, ['1'], 0.6), r(2, ['1'], 0.5)], { allowOvercommit: true, locate });
    expect(warnings).toEqual([
      {
        code: 'OMNI_PLAN_OVERCOMMIT',
        message:
          'GPU memory over-committed on device 1: stage 1 replica 0 (0.6) + stage 2 replica 0 (0.5) = 1.10 > 1.00.',
        hint: expect.stringContaining('--allow-overcommit') as unknown as string,
        file: 'p.yaml',
        line: 11,
        col: 5,
      },
    ]);
  });

  it('applies the reserve', () => {
    expect(checkAdmission([r(0, ['0'], 0.45), r(1, ['0'], 0.45)], { reserve: 0.1 })).toEqual([]);
    // 0.34 + 0.56 is 0.9000000000000001: still within 1 − 0.1.
    expect(checkAdmission([r(0, ['0'], 0.34), r(1, ['0'], 0.56)], { reserve: 0.1 })).toEqual([]);
    const err = catchOmni(() => checkAdmission([r(0, ['0'], 0.5), r(1, ['0'], 0.45)], { reserve: 0.1 }));
    expect(err.message).toContain('= 0.95 > 0.90 (1.00 minus reserve 0.10)');
    expect(err.hint).toContain('at most 0.90');
  });

  it('rejects a reserve outside [0, 1)', () => {
    expect(catchOmni(() => checkAdmission([], { reserve: 1 })).code).toBe('OMNI_CONFIG_INVALID');
    expect(catchOmni(() => checkAdmission([], { reserve: -0.1 })).code).toBe('OMNI_CONFIG_INVALID');
  });

  it('only counts replicas that set gpu_memory_utilization', () => {
    expect(checkAdmission([r(0, ['0'], 0.9), r(1, ['0']), r(2, ['0'], null)])).toEqual([]);
  });

  it('charges a replica on each of its devices once', () => {
    expect(checkAdmission([r(0, ['0', '1'], 0.5), r(1, ['1', '1'], 0.5)])).toEqual([]);
    expect(() => checkAdmission([r(0, ['0', '1'], 0.5), r(1, ['1'], 0.6)])).toThrow(/device 1: /);
  });

  it('charges an inheriting replica on every visible device', () => {
    const replicas = [r(0, null, 0.5), r(1, ['3'], 0.6)];
    expect(checkAdmission(replicas)).toEqual([]); // nothing known about visibility
    expect(checkAdmission(replicas, { visible: ['0', '1'] })).toEqual([]);
    const err = catchOmni(() => checkAdmission(replicas, { visible: ['2', '3'] }));
    expect(err.message).toContain('device 3: stage 0 replica 0 (0.5) + stage 1 replica 0 (0.6) = 1.10 > 1.00');
  });

  it('rejects a budget outside (0, 1] and accepts numeric strings', () => {
    for (const bad of [0, 1.2, -0.5, 'lots']) {
      const err = catchOmni(() => checkAdmission([r(4, ['0'], bad)], { locate }));
      expect(err.code).toBe('OMNI_CONFIG_INVALID');
      expect(err.message).toBe(
        `Stage 4: gpu_memory_utilization must be a number in (0, 1], got ${JSON.stringify(bad)}.`,
      );
      expect(err.location).toEqual(locate(4));
    }
    expect(() => checkAdmission([r(0, ['0'], '0.6'), r(1, ['0'], 0.5)])).toThrow(/= 1\.10 > 1\.00/);
  });
});

describe('misspelt admission keys', () => {
  it('gpu_memory_utilisation is an error at the key, naming the key admission reads', async () => {
    const { loadPipelineConfig } = await import('../../src/config/load-pipeline.js');
    const { checkEngineArgs } = await import('../../src/planning/engine-args-check.js');
    const checkAdmissionKeys = (stages: readonly import('../../src/config/types.js').StageConfig[]): void => {
      for (const stage of stages)
        checkEngineArgs(stage, { engine: 'vllm', declaration: 'any', sharedKeys: new Set(), warnedAt: new Set() });
    };
    const config = await loadPipelineConfig({
      text: 'stage_args:\n  - stage_id: 0\n    engine_args:\n      gpu_memory_utilisation: 0.3\n',
      path: '/cfg/p.yaml',
    });
    const err = catchOmni(() => checkAdmissionKeys(config.stages));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.location).toEqual({ file: '/cfg/p.yaml', line: 4, col: 7 });
    expect(err.hint).toContain('gpu_memory_utilization');
    const fine = await loadPipelineConfig({
      text: 'stage_args:\n  - stage_id: 0\n    engine_args:\n      gpu_memory_utilization: 0.3\n      max_num_seqs: 2\n',
    });
    expect(() => checkAdmissionKeys(fine.stages)).not.toThrow();
  });
});
