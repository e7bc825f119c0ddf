import { OmniError } from '@omnistage/core';
import type { StageConfig } from '@omnistage/core';
import { getDiffusionDevicesPerReplica } from './devices-per-replica.js';

/**
 * Fails when a diffusion replica is given fewer devices than its parallel world size (as upstream's
 * `build_diffusion_config` does, with a `ValueError`). `available` is the replica's device list — its slice of `runtime.devices`, or all
 * visible devices when the stage sets none; blank entries are ignored, as upstream drops empty
 * tokens.
 *
 * Unlike the LLM path (whose count check inside the lock helper is swallowed), upstream raises
 * here; so do we, as a plan error (`OMNI_PLAN_DEVICES`) located at `runtime.devices`.
 */
export function checkDiffusionDeviceCount(stage: StageConfig, available: readonly string[]): void {
  const devices = available.map((d) => d.trim()).filter((d) => d !== '');
  const required = getDiffusionDevicesPerReplica(stage);
  if (devices.length >= required) return;

  const have =
    devices.length === 0
      ? 'no devices are available'
      : `only ${devices.length} ${devices.length === 1 ? 'is' : 'are'} available: [${devices.join(', ')}]`;
  const example = Array.from({ length: required }, (_, i) => String(i)).join(',');
  throw new OmniError(
    'OMNI_PLAN_DEVICES',
    `diffusion stage ${stage.stage_id} needs ${required} device${required === 1 ? '' : 's'} per replica (its parallel world size) but ${have}`,
    {
      location: stage.locations.at('runtime.devices'),
      hint:
        `give each replica at least ${required} devices in runtime.devices (e.g. devices: "${example}"), ` +
        'make more devices visible, or lower the degrees in engine_args.parallel_config',
      context: { stage_id: stage.stage_id, stage_idx: stage.stage_idx, required, available: devices },
    },
  );
}
