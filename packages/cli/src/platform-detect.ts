import { spawnSync } from 'node:child_process';
import type { PlatformName } from '@omnistage/core';
import { OmniError } from '@omnistage/core';

const PLATFORM_NAMES: readonly PlatformName[] = ['cuda', 'rocm', 'npu', 'xpu', 'cpu'];

/** Counts GPUs with `nvidia-smi -L`; null when the tool is missing or fails. */
function nvidiaDeviceCount(): number | null {
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 });
  if (r.error || r.status !== 0) return null;
  return r.stdout.split('\n').filter((l) => l.startsWith('GPU ')).length;
}

/**
 * The platform and device count to plan for. `--platform` wins; otherwise CUDA when a CUDA
 * device variable is set or nvidia-smi finds GPUs, else `cpu` (virtual devices), so a laptop can
 * dry-run any pipeline without flags.
 */
export function detectPlatform(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
): { platform: PlatformName; detectedDeviceCount?: number } {
  if (flag !== undefined && !PLATFORM_NAMES.includes(flag as PlatformName)) {
    throw new OmniError('OMNI_USAGE', `--platform must be one of ${PLATFORM_NAMES.join(', ')}, got "${flag}"`, {
      hint: 'use --platform cpu to plan on virtual devices without GPUs',
    });
  }
  const wanted = flag as PlatformName | undefined;
  if (wanted === 'cpu') return { platform: 'cpu' };
  if (wanted && wanted !== 'cuda') return { platform: wanted };
  const count = nvidiaDeviceCount();
  const visibleVar = env.CUDA_VISIBLE_DEVICES;
  if (wanted === 'cuda' && (count === null || count === 0) && (visibleVar === undefined || visibleVar.trim() === '')) {
    // Planning for zero GPUs only fails later with an index hint that points the wrong way.
    const why = count === null ? 'nvidia-smi was not found' : 'nvidia-smi lists no GPU';
    throw new OmniError(
      'OMNI_USAGE',
      `--platform cuda, but no GPU is visible (${why}${visibleVar === undefined ? '' : ' and CUDA_VISIBLE_DEVICES is empty'})`,
      {
        hint: 'use --platform cpu to plan and run on virtual devices (with --engine reference for engines that need a GPU)',
      },
    );
  }
  if (wanted === 'cuda' || env.CUDA_VISIBLE_DEVICES !== undefined || (count !== null && count > 0)) {
    return count === null ? { platform: 'cuda' } : { platform: 'cuda', detectedDeviceCount: count };
  }
  return { platform: 'cpu' };
}
