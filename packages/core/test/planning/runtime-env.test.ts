import { describe, expect, it } from 'vitest';
import { createStageConfig } from '../../src/config/stage-defaults.js';
import { stageRuntimeEnv } from '../../src/planning/runtime-env.js';

const stage = createStageConfig({
  stage_id: 7,
  stage_idx: 1,
  runtime: { env: { HCCL_IF_BASE_PORT: '23000', FLAG: 'True' } },
});

describe('stageRuntimeEnv', () => {
  it('combines runtime.env, the device var and the identity vars', () => {
    expect(
      stageRuntimeEnv({ stage, replicaId: 1, platform: 'cuda', physicalDevices: ['2', '3'], runId: 'run-1' }),
    ).toEqual({
      HCCL_IF_BASE_PORT: '23000',
      FLAG: 'True',
      CUDA_VISIBLE_DEVICES: '2,3',
      OMNISTAGE_RUN_ID: 'run-1',
      OMNISTAGE_STAGE_ID: '7',
      OMNISTAGE_REPLICA_ID: '1',
    });
  });

  it('rocm writes both HIP_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES', () => {
    const env = stageRuntimeEnv({ stage, replicaId: 0, platform: 'rocm', physicalDevices: ['1'], runId: 'r' });
    expect(env['HIP_VISIBLE_DEVICES']).toBe('1');
    expect(env['CUDA_VISIBLE_DEVICES']).toBe('1');
  });

  it("uses each platform's own variable", () => {
    const npu = stageRuntimeEnv({ stage, replicaId: 0, platform: 'npu', physicalDevices: ['4', '5'], runId: 'r' });
    expect(npu['ASCEND_RT_VISIBLE_DEVICES']).toBe('4,5');
    expect(npu['CUDA_VISIBLE_DEVICES']).toBeUndefined();
    const xpu = stageRuntimeEnv({ stage, replicaId: 0, platform: 'xpu', physicalDevices: ['0'], runId: 'r' });
    expect(xpu['ZE_AFFINITY_MASK']).toBe('0');
    const cpu = stageRuntimeEnv({ stage, replicaId: 0, platform: 'cpu', physicalDevices: ['6'], runId: 'r' });
    expect(cpu['OMNISTAGE_VISIBLE_DEVICES']).toBe('6');
  });

  it('omits the device var when the replica inherits (null or empty)', () => {
    for (const physicalDevices of [null, []]) {
      const env = stageRuntimeEnv({ stage, replicaId: 0, platform: 'cuda', physicalDevices, runId: 'r' });
      expect(Object.keys(env)).toEqual([
        'HCCL_IF_BASE_PORT',
        'FLAG',
        'OMNISTAGE_RUN_ID',
        'OMNISTAGE_STAGE_ID',
        'OMNISTAGE_REPLICA_ID',
      ]);
    }
  });

  it('the planned devices win over a device var in runtime.env (upstream order)', () => {
    const s = createStageConfig({
      stage_id: 0,
      runtime: { env: { CUDA_VISIBLE_DEVICES: '0', HIP_VISIBLE_DEVICES: '0' } },
    });
    expect(
      stageRuntimeEnv({ stage: s, replicaId: 0, platform: 'cuda', physicalDevices: ['3'], runId: 'r' })[
        'CUDA_VISIBLE_DEVICES'
      ],
    ).toBe('3');
    const rocm = stageRuntimeEnv({ stage: s, replicaId: 0, platform: 'rocm', physicalDevices: ['3'], runId: 'r' });
    expect([rocm['HIP_VISIBLE_DEVICES'], rocm['CUDA_VISIBLE_DEVICES']]).toEqual(['3', '3']);
  });

  it('keeps a runtime.env device var when the replica inherits', () => {
    const s = createStageConfig({ stage_id: 0, runtime: { env: { CUDA_VISIBLE_DEVICES: '0' } } });
    expect(
      stageRuntimeEnv({ stage: s, replicaId: 0, platform: 'cuda', physicalDevices: null, runId: 'r' })[
        'CUDA_VISIBLE_DEVICES'
      ],
    ).toBe('0');
  });

  it('identity vars cannot be overridden by runtime.env', () => {
    const s = createStageConfig({ stage_id: 2, runtime: { env: { OMNISTAGE_STAGE_ID: '99', OMNISTAGE_RUN_ID: 'x' } } });
    const env = stageRuntimeEnv({ stage: s, replicaId: 3, platform: 'cpu', physicalDevices: null, runId: 'run' });
    expect(env['OMNISTAGE_STAGE_ID']).toBe('2');
    expect(env['OMNISTAGE_RUN_ID']).toBe('run');
    expect(env['OMNISTAGE_REPLICA_ID']).toBe('3');
  });

  it('neither mutates the stage nor touches process.env', () => {
    const before = { ...process.env };
    stageRuntimeEnv({ stage, replicaId: 0, platform: 'cuda', physicalDevices: ['0'], runId: 'r' });
    expect(stage.runtime.env).toEqual({ HCCL_IF_BASE_PORT: '23000', FLAG: 'True' });
    expect(process.env).toEqual(before);
  });
});
