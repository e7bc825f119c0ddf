import { LocationIndex, createStageConfig } from '@omnistage/core/testing';
import { describe, expect, it } from 'vitest';
import { getDiffusionDevicesPerReplica } from '../src/devices-per-replica.js';
import { errorOf } from './error-of.js';

function diffusionStage(engineArgs: Record<string, unknown>) {
  const locations = new LocationIndex({ file: 'pipe.yaml', line: 3, col: 5 });
  locations.set('engine_args.parallel_config', { file: 'pipe.yaml', line: 8, col: 7 });
  locations.set('engine_args.parallel_config.ulysses_degree', { file: 'pipe.yaml', line: 9, col: 9 });
  return createStageConfig({ stage_id: 4, stage_idx: 1, stage_type: 'diffusion', engine_args: engineArgs, locations });
}

describe('getDiffusionDevicesPerReplica', () => {
  it('is 1 without engine_args.parallel_config', () => {
    expect(getDiffusionDevicesPerReplica(diffusionStage({}))).toBe(1);
    expect(getDiffusionDevicesPerReplica(diffusionStage({ tensor_parallel_size: 4 }))).toBe(1);
  });

  it('is the parallel world size', () => {
    expect(
      getDiffusionDevicesPerReplica(diffusionStage({ parallel_config: { ulysses_degree: 2, ring_degree: 2 } })),
    ).toBe(4);
    expect(getDiffusionDevicesPerReplica(diffusionStage({ parallel_config: { world_size: 3 } }))).toBe(3);
  });

  it('throws for an invalid config (upstream would quietly answer 1), located in the stage', () => {
    const err = errorOf(() =>
      getDiffusionDevicesPerReplica(
        diffusionStage({ parallel_config: { ulysses_degree: 2, sequence_parallel_size: 3 } }),
      ),
    );
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    // sequence_parallel_size was not recorded: the location falls back to the parallel_config mapping.
    expect(err.location).toEqual({ file: 'pipe.yaml', line: 8, col: 7 });
    expect(err.context).toMatchObject({ stage_id: 4, stage_idx: 1 });

    const bad = errorOf(() =>
      getDiffusionDevicesPerReplica(diffusionStage({ parallel_config: { ulysses_degree: 0 } })),
    );
    expect(bad.location).toEqual({ file: 'pipe.yaml', line: 9, col: 9 });
  });

  it('points at parallel_config itself when it is not a mapping', () => {
    const err = errorOf(() => getDiffusionDevicesPerReplica(diffusionStage({ parallel_config: 'tp=2' })));
    expect(err.location).toEqual({ file: 'pipe.yaml', line: 8, col: 7 });
  });
});
