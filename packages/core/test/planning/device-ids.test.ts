import { describe, expect, it } from 'vitest';
import { compareDeviceIds, sortDeviceIds, splitDeviceList, uniqueDeviceIds } from '../../src/planning/device-ids.js';

describe('splitDeviceList', () => {
  it('strips tokens and drops empty ones', () => {
    expect(splitDeviceList(' 0, 1,,2 ,')).toEqual(['0', '1', '2']);
    expect(splitDeviceList('')).toEqual([]);
    expect(splitDeviceList(' , ')).toEqual([]);
  });
});

describe('sortDeviceIds', () => {
  it('sorts numerically, not lexically', () => {
    expect(sortDeviceIds(['10', '2', '1'])).toEqual(['1', '2', '10']);
  });
  it('puts non-numeric ids after numeric ones, by code unit', () => {
    expect(sortDeviceIds(['GPU-b', '3', 'GPU-a', '0'])).toEqual(['0', '3', 'GPU-a', 'GPU-b']);
  });
  it('orders equal numeric values deterministically', () => {
    expect(compareDeviceIds('07', '7')).toBe(-1);
    expect(compareDeviceIds('7', '7')).toBe(0);
  });
  it('does not modify its input', () => {
    const ids = ['3', '1'];
    sortDeviceIds(ids);
    expect(ids).toEqual(['3', '1']);
  });
});

describe('uniqueDeviceIds', () => {
  it('keeps the first occurrence', () => {
    expect(uniqueDeviceIds(['3', '1', '3', '0'])).toEqual(['3', '1', '0']);
  });
});
