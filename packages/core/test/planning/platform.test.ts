import { describe, expect, it } from 'vitest';
import { CPU_DEFAULT_DEVICE_COUNT, PLATFORMS, resolveVisibleDevices } from '../../src/planning/platform.js';
import { catchOmni } from './helpers.js';

describe('PLATFORMS', () => {
  it('names the device env var(s) of every platform', () => {
    expect(PLATFORMS.cuda.deviceEnv).toEqual(['CUDA_VISIBLE_DEVICES']);
    expect(PLATFORMS.rocm.deviceEnv).toEqual(['HIP_VISIBLE_DEVICES', 'CUDA_VISIBLE_DEVICES']);
    expect(PLATFORMS.npu.deviceEnv).toEqual(['ASCEND_RT_VISIBLE_DEVICES']);
    expect(PLATFORMS.xpu.deviceEnv).toEqual(['ZE_AFFINITY_MASK']);
    expect(PLATFORMS.cpu.deviceEnv).toEqual(['OMNISTAGE_VISIBLE_DEVICES']);
    expect(PLATFORMS.cpu.virtual).toBe(true);
    expect(PLATFORMS.cuda.virtual).toBe(false);
  });
  it('is frozen', () => {
    expect(Object.isFrozen(PLATFORMS)).toBe(true);
    expect(Object.isFrozen(PLATFORMS.rocm.deviceEnv)).toBe(true);
  });
});

describe('resolveVisibleDevices', () => {
  it('reads the device env var, stripping tokens and dropping empties', () => {
    expect(resolveVisibleDevices('cuda', { CUDA_VISIBLE_DEVICES: ' 2, 3,,4,5 ' }, 8)).toEqual({
      visible: ['2', '3', '4', '5'],
      envWasSet: true,
    });
  });
  it('counts a set-but-empty var as set, with nothing visible', () => {
    expect(resolveVisibleDevices('cuda', { CUDA_VISIBLE_DEVICES: '' }, 8)).toEqual({ visible: [], envWasSet: true });
  });
  it('falls back to the detected count', () => {
    expect(resolveVisibleDevices('cuda', {}, 3)).toEqual({ visible: ['0', '1', '2'], envWasSet: false });
    expect(resolveVisibleDevices('npu', { CUDA_VISIBLE_DEVICES: '1' }, 2)).toEqual({
      visible: ['0', '1'],
      envWasSet: false,
    });
  });
  it('has no visible devices on hardware without a detected count', () => {
    expect(resolveVisibleDevices('xpu', {})).toEqual({ visible: [], envWasSet: false });
  });
  it('reads ZE_AFFINITY_MASK on xpu and ASCEND_RT_VISIBLE_DEVICES on npu', () => {
    expect(resolveVisibleDevices('xpu', { ZE_AFFINITY_MASK: '1,0' }).visible).toEqual(['1', '0']);
    expect(resolveVisibleDevices('npu', { ASCEND_RT_VISIBLE_DEVICES: '4' }).visible).toEqual(['4']);
  });
  it('rocm: HIP_VISIBLE_DEVICES first, CUDA_VISIBLE_DEVICES when only that is set', () => {
    expect(resolveVisibleDevices('rocm', { HIP_VISIBLE_DEVICES: '1', CUDA_VISIBLE_DEVICES: '0' }).visible).toEqual([
      '1',
    ]);
    expect(resolveVisibleDevices('rocm', { CUDA_VISIBLE_DEVICES: '0,2' })).toEqual({
      visible: ['0', '2'],
      envWasSet: true,
    });
  });
  it('cpu: 8 virtual devices by default', () => {
    expect(CPU_DEFAULT_DEVICE_COUNT).toBe(8);
    expect(resolveVisibleDevices('cpu', {})).toEqual({
      visible: ['0', '1', '2', '3', '4', '5', '6', '7'],
      envWasSet: false,
    });
  });
  it('cpu: OMNISTAGE_VISIBLE_DEVICES, or a configured count', () => {
    expect(resolveVisibleDevices('cpu', { OMNISTAGE_VISIBLE_DEVICES: '4,5' })).toEqual({
      visible: ['4', '5'],
      envWasSet: true,
    });
    expect(resolveVisibleDevices('cpu', { CUDA_VISIBLE_DEVICES: '0' }, 2)).toEqual({
      visible: ['0', '1'],
      envWasSet: false,
    });
  });
  it('keeps non-numeric ids (GPU UUIDs) as written', () => {
    expect(resolveVisibleDevices('cuda', { CUDA_VISIBLE_DEVICES: 'GPU-aa,GPU-bb' }).visible).toEqual([
      'GPU-aa',
      'GPU-bb',
    ]);
  });
  it('rejects a bad detected count as an internal error', () => {
    expect(catchOmni(() => resolveVisibleDevices('cuda', {}, -1)).code).toBe('OMNI_INTERNAL');
    expect(catchOmni(() => resolveVisibleDevices('cuda', {}, 1.5)).code).toBe('OMNI_INTERNAL');
  });
});
