import { describe, expect, it } from 'vitest';
import { lockDeviceCount, selectLockDevices } from '../../src/planning/lock-devices.js';
import { catchOmni } from './helpers.js';

describe('lockDeviceCount', () => {
  it('is 1 for empty engine args', () => {
    expect(lockDeviceCount({})).toBe(1);
  });
  it('top level: TP × PP × DP × PCP', () => {
    expect(
      lockDeviceCount({
        tensor_parallel_size: 2,
        pipeline_parallel_size: 3,
        data_parallel_size: 2,
        prefill_context_parallel_size: 2,
      }),
    ).toBe(24);
  });
  it('top level ignores sequence and cfg parallel sizes', () => {
    expect(lockDeviceCount({ tensor_parallel_size: 2, sequence_parallel_size: 4, cfg_parallel_size: 2 })).toBe(2);
  });
  it('parallel_config: TP × PP × DP × PCP × SP × CFG, ignoring top-level sizes', () => {
    expect(
      lockDeviceCount({
        tensor_parallel_size: 8,
        parallel_config: {
          tensor_parallel_size: 1,
          sequence_parallel_size: 4,
          cfg_parallel_size: 2,
          data_parallel_size: 1,
        },
      }),
    ).toBe(8);
    expect(
      lockDeviceCount({
        parallel_config: {
          tensor_parallel_size: 2,
          pipeline_parallel_size: 2,
          data_parallel_size: 2,
          prefill_context_parallel_size: 2,
          sequence_parallel_size: 2,
          cfg_parallel_size: 2,
        },
      }),
    ).toBe(64);
  });
  it('counts null and non-numeric factors as 1, numeric strings as numbers', () => {
    expect(lockDeviceCount({ tensor_parallel_size: null, pipeline_parallel_size: 'x', data_parallel_size: '2' })).toBe(
      2,
    );
    expect(lockDeviceCount({ parallel_config: { tensor_parallel_size: null, cfg_parallel_size: 3 } })).toBe(3);
  });
  it('counts 0, negatives and fractions as 1', () => {
    expect(lockDeviceCount({ tensor_parallel_size: 0, pipeline_parallel_size: -2, data_parallel_size: 1.5 })).toBe(1);
  });
  it('falls back to the top level when parallel_config is not a mapping', () => {
    expect(lockDeviceCount({ parallel_config: null, tensor_parallel_size: 4 })).toBe(4);
  });
});

describe('selectLockDevices', () => {
  it('takes the first N in env order, then sorts ascending', () => {
    expect(selectLockDevices(['3', '1'], 2, 0)).toEqual(['1', '3']);
    expect(selectLockDevices(['5', '4', '0', '1'], 2, 0)).toEqual(['4', '5']);
  });
  it('sorts numerically: "10" after "2"', () => {
    expect(selectLockDevices(['10', '2', '9'], 3, 0)).toEqual(['2', '9', '10']);
  });
  it('counts repeated ids once', () => {
    expect(selectLockDevices(['2', '2', '1'], 2, 0)).toEqual(['1', '2']);
  });
  it('fails when fewer devices than needed are available (upstream takes no locks)', () => {
    const location = { file: 'p.yaml', line: 3, col: 7 };
    const err = catchOmni(() => selectLockDevices(['0', '1'], 4, 2, { replicaId: 1, location }));
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.message).toBe(
      'Stage 2 replica 1 needs 4 device(s) (tensor × pipeline × data × context parallel) but only 2 are available: [0, 1].',
    );
    expect(err.hint).toBe('give the stage at least 4 devices in runtime.devices, or lower its parallel sizes');
    expect(err.location).toEqual(location);
    expect(err.context).toMatchObject({ stage_idx: 2, replica_id: 1 });
  });
  it('says "none" when nothing is available', () => {
    const err = catchOmni(() => selectLockDevices([], 1, 0));
    expect(err.message).toBe(
      'Stage 0 needs 1 device(s) (tensor × pipeline × data × context parallel) but only 0 are available: none.',
    );
  });
  it('fails when duplicates hide a shortage', () => {
    expect(catchOmni(() => selectLockDevices(['0', '0'], 2, 0)).code).toBe('OMNI_PLAN_DEVICES');
  });
});
