import type { StageConfig } from '@omnistage/core';
import { diffusionWorldSize } from './world-size.js';

/**
 * Devices one replica of a diffusion stage needs: the parallel world size of
 * `engine_args.parallel_config` (the diffusion branch of upstream `get_stage_devices_per_replica`);
 * no `parallel_config` → 1.
 *
 * Deliberate difference from upstream: upstream swallows any error building the parallel config
 * and answers 1, so a broken config plans one device per replica and fails later at engine start.
 * Here an invalid config throws `OMNI_CONFIG_INVALID` at the offending key, with the stage id in
 * the error context.
 */
export function getDiffusionDevicesPerReplica(stage: StageConfig): number {
  return diffusionWorldSize(
    stage.engine_args.parallel_config,
    (key) => stage.locations.at(key === '' ? 'engine_args.parallel_config' : `engine_args.parallel_config.${key}`),
    { stage_id: stage.stage_id, stage_idx: stage.stage_idx },
  );
}
