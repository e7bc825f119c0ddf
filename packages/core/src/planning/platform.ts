import { OmniError } from '../errors.js';
import { splitDeviceList } from './device-ids.js';
import type { PlatformName } from './types.js';

/** What the planner needs to know about a platform. */
export interface PlatformInfo {
  /**
   * Env var(s) that restrict a child's visible devices. Every one is written for each child; the
   * launcher's own visible devices are read from the first one that is set.
   */
  readonly deviceEnv: readonly string[];
  /** True when the devices are virtual (no accelerator behind them). */
  readonly virtual: boolean;
}

/** Virtual devices the `cpu` platform offers when `OMNISTAGE_VISIBLE_DEVICES` is unset. */
export const CPU_DEFAULT_DEVICE_COUNT = 8;

/**
 * The platforms omnistage plans for. ROCm writes both `HIP_VISIBLE_DEVICES` and
 * `CUDA_VISIBLE_DEVICES`, as upstream's omni ROCm platform does (it sets and clears both together). `cpu` has no hardware
 * variable, so it gets one of ours, read by the reference engines.
 */
export const PLATFORMS: Readonly<Record<PlatformName, PlatformInfo>> = Object.freeze({
  cuda: Object.freeze({ deviceEnv: Object.freeze(['CUDA_VISIBLE_DEVICES']), virtual: false }),
  rocm: Object.freeze({ deviceEnv: Object.freeze(['HIP_VISIBLE_DEVICES', 'CUDA_VISIBLE_DEVICES']), virtual: false }),
  npu: Object.freeze({ deviceEnv: Object.freeze(['ASCEND_RT_VISIBLE_DEVICES']), virtual: false }),
  xpu: Object.freeze({ deviceEnv: Object.freeze(['ZE_AFFINITY_MASK']), virtual: false }),
  cpu: Object.freeze({ deviceEnv: Object.freeze(['OMNISTAGE_VISIBLE_DEVICES']), virtual: true }),
});

/** The launcher's visible devices, as {@link resolveVisibleDevices} found them. */
export interface VisibleDevices {
  /** Physical device ids, in the order logical indices refer to them. */
  visible: string[];
  /** True when a device env var was set (even to an empty string). */
  envWasSet: boolean;
}

/**
 * The physical devices visible to the launcher. Pure: the caller passes the environment and, for
 * hardware platforms, the device count it detected.
 *
 * - A set device env var wins, even when empty (then nothing is visible, as for the accelerator
 *   runtime). Its tokens are kept as written (they may be UUIDs or MIG ids).
 * - Otherwise `detectedCount` devices `"0".."n-1"`; for `cpu`, `detectedCount` (the configured
 *   virtual device count) or {@link CPU_DEFAULT_DEVICE_COUNT}. A hardware platform without a
 *   detected count has no visible devices.
 *
 * @throws OmniError `OMNI_INTERNAL` when `detectedCount` is not a non-negative integer (a caller bug).
 */
export function resolveVisibleDevices(
  platform: PlatformName,
  env: Readonly<Record<string, string | undefined>>,
  detectedCount?: number,
): VisibleDevices {
  const info = PLATFORMS[platform];
  // ROCm: HIP_VISIBLE_DEVICES first; a launcher that only set CUDA_VISIBLE_DEVICES is still honoured.
  for (const name of info.deviceEnv) {
    const value = env[name];
    if (value !== undefined) return { visible: splitDeviceList(value), envWasSet: true };
  }
  if (detectedCount !== undefined && (!Number.isInteger(detectedCount) || detectedCount < 0)) {
    throw new OmniError('OMNI_INTERNAL', `detected device count must be a non-negative integer, got ${detectedCount}.`);
  }
  const count = detectedCount ?? (info.virtual ? CPU_DEFAULT_DEVICE_COUNT : 0);
  return { visible: Array.from({ length: count }, (_, i) => String(i)), envWasSet: false };
}
