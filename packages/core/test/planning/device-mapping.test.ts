import { describe, expect, it } from 'vitest';
import { mapLogicalDevices } from '../../src/planning/device-mapping.js';
import { catchOmni } from './helpers.js';

const OFFSET = ['2', '3', '4', '5'];
const LOC = { file: 'p.yaml', line: 4, col: 16 };

describe('mapLogicalDevices', () => {
  it('null and "cpu" inherit every visible device', () => {
    expect(mapLogicalDevices(0, null, OFFSET, true)).toEqual({ physical: null, warnings: [] });
    expect(mapLogicalDevices(0, 'cpu', OFFSET, true)).toEqual({ physical: null, warnings: [] });
  });

  it('maps logical indices through an offset visible list (#4071)', () => {
    expect(mapLogicalDevices(0, '0,1', OFFSET, true)).toEqual({ physical: ['2', '3'], warnings: [] });
    expect(mapLogicalDevices(0, '3, 1', OFFSET, true)).toEqual({ physical: ['5', '3'], warnings: [] });
  });

  it('keeps logical order and duplicates', () => {
    expect(mapLogicalDevices(0, '1,0,1', ['6', '7'], true).physical).toEqual(['7', '6', '7']);
  });

  it('maps identically through detected devices when the env var is unset', () => {
    expect(mapLogicalDevices(0, '1', ['0', '1', '2'], false)).toEqual({ physical: ['1'], warnings: [] });
  });

  it('passes ids through as physical when every id is out of range, with a warning', () => {
    const result = mapLogicalDevices(2, '4,05', OFFSET, true, LOC);
    expect(result.physical).toEqual(['4', '5']);
    expect(result.warnings).toEqual([
      {
        code: 'OMNI_WARN_PHYSICAL_DEVICE_IDS',
        message:
          'Stage 2: devices "4,05" are all outside the 4 visible device(s) [2, 3, 4, 5] (from the device env var); ' +
          'using them as physical device ids.',
        hint: 'runtime.devices are logical indices 0..3 into the visible devices',
        file: 'p.yaml',
        line: 4,
        col: 16,
      },
    ]);
  });

  it('passes ids through when nothing is visible', () => {
    const result = mapLogicalDevices(0, '0', [], false);
    expect(result.physical).toEqual(['0']);
    expect(result.warnings.map((w) => w.code)).toEqual(['OMNI_WARN_PHYSICAL_DEVICE_IDS']);
    expect(result.warnings[0]?.message).toContain('(from detection)');
  });

  it('drops out-of-range ids of a mixed list, with a warning', () => {
    const result = mapLogicalDevices(1, '0,7,1,9', OFFSET, true, LOC);
    expect(result.physical).toEqual(['2', '3']);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]?.code).toBe('OMNI_WARN_DEVICE_DROPPED');
    expect(result.warnings[0]?.message).toBe(
      'Stage 1: logical device(s) 7, 9 of "0,7,1,9" are outside the 4 visible device(s) [2, 3, 4, 5] ' +
        '(from the device env var) and were dropped.',
    );
    expect(result.warnings[0]?.line).toBe(4);
  });

  it('rejects non-integer and negative tokens', () => {
    for (const bad of ['0,a', '-1', '1.5', 'GPU-0']) {
      const err = catchOmni(() => mapLogicalDevices(3, bad, OFFSET, true, LOC));
      expect(err.code).toBe('OMNI_PLAN_DEVICES');
      expect(err.message.startsWith(`Stage 3: logical devices must be non-negative integers, got "${bad}"`)).toBe(true);
      expect(err.location).toEqual(LOC);
      expect(err.hint).toBeDefined();
    }
  });

  it('rejects devices: "" (upstream would hide every device)', () => {
    for (const empty of ['', ' , ']) {
      const err = catchOmni(() => mapLogicalDevices(0, empty, OFFSET, false, LOC));
      expect(err.code).toBe('OMNI_PLAN_DEVICES');
      expect(err.message).toBe(`Stage 0: runtime.devices is empty ("${empty}").`);
      expect(err.hint).toContain('remove runtime.devices');
    }
  });
});
