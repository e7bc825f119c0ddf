import { formatError } from '@omnistage/core';
import { LocationIndex, createStageConfig } from '@omnistage/core/testing';
import { describe, expect, it } from 'vitest';
import { checkDiffusionDeviceCount } from '../src/device-count.js';
import { errorOf } from './error-of.js';

const DEVICES_AT = { file: 'pipe.yaml', line: 12, col: 16 };

function stageWithWorld(parallelConfig: Record<string, unknown>) {
  const locations = new LocationIndex({ file: 'pipe.yaml', line: 3, col: 5 });
  locations.set('runtime.devices', DEVICES_AT);
  return createStageConfig({
    stage_id: 7,
    stage_type: 'diffusion',
    engine_args: { parallel_config: parallelConfig },
    runtime: { devices: '0,1' },
    locations,
  });
}

describe('checkDiffusionDeviceCount', () => {
  it('passes when there are enough devices (more is fine)', () => {
    expect(() => checkDiffusionDeviceCount(stageWithWorld({ ulysses_degree: 2 }), ['0', '1'])).not.toThrow();
    expect(() => checkDiffusionDeviceCount(stageWithWorld({ ulysses_degree: 2 }), ['0', '1', '2'])).not.toThrow();
    expect(() => checkDiffusionDeviceCount(stageWithWorld({}), ['5'])).not.toThrow();
  });

  it('fails with a plan error naming the stage, the required count and the available list', () => {
    const err = errorOf(() =>
      checkDiffusionDeviceCount(stageWithWorld({ ulysses_degree: 2, cfg_parallel_size: 2 }), ['0', '1']),
    );
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(
      'diffusion stage 7 needs 4 devices per replica (its parallel world size) but only 2 are available: [0, 1]',
    );
    expect(err.location).toEqual(DEVICES_AT);
    expect(err.hint).toContain('devices: "0,1,2,3"');
    expect(err.context).toMatchObject({ stage_id: 7, required: 4, available: ['0', '1'] });
    expect(formatError(err)).toMatch(/^pipe\.yaml:12:16: error OMNI_PLAN_DEVICES: diffusion stage 7 needs 4/);
  });

  it('ignores blank entries, as upstream drops empty tokens', () => {
    const err = errorOf(() => checkDiffusionDeviceCount(stageWithWorld({ tensor_parallel_size: 2 }), ['3', '', ' ']));
    expect(err.message).toContain('only 1 is available: [3]');
  });

  it('says so when no device is available', () => {
    const err = errorOf(() => checkDiffusionDeviceCount(stageWithWorld({}), []));
    expect(err.message).toBe(
      'diffusion stage 7 needs 1 device per replica (its parallel world size) but no devices are available',
    );
  });
});
