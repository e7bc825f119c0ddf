import { describe, expect, it } from 'vitest';
import { LocationIndex } from '../../src/config/location-index.js';
import { createStageConfig } from '../../src/config/stage-defaults.js';
import type { StageConfig, StageRuntimeConfig } from '../../src/config/types.js';
import { computeReplicaLayout } from '../../src/planning/replica-layout.js';
import { catchOmni } from './helpers.js';

const FILE = 'pipeline.yaml';

function stage(stage_idx: number, runtime: Partial<StageRuntimeConfig>, tp = 1): StageConfig {
  const locations = new LocationIndex({ file: FILE, line: 10 * stage_idx + 1, col: 5 });
  locations.set('runtime.num_replicas', { file: FILE, line: 10 * stage_idx + 3, col: 21 });
  locations.set('runtime.devices', { file: FILE, line: 10 * stage_idx + 4, col: 16 });
  return createStageConfig({
    stage_id: stage_idx,
    stage_idx,
    runtime,
    engine_args: { tensor_parallel_size: tp },
    locations,
  });
}

const tpOf = (s: StageConfig): number => Number(s.engine_args['tensor_parallel_size'] ?? 1);

describe('computeReplicaLayout', () => {
  it('counts replicas per stage and splits only stages with more than one', () => {
    const layout = computeReplicaLayout(
      [
        stage(0, { devices: '0' }),
        stage(1, { num_replicas: 2, devices: '1,2,3,4' }, 2),
        stage(2, { num_replicas: 3, devices: '0' }),
      ],
      { devicesPerReplica: tpOf },
    );
    expect(layout.replicasPerStage).toEqual([1, 2, 3]);
    expect([...layout.replicaDevices.entries()]).toEqual([
      [1, ['1,2', '3,4']],
      [2, ['0', '1', '2']],
    ]);
  });

  it('accepts a numeric string count, as Python int() does', () => {
    const s = stage(0, { devices: '0' });
    (s.runtime as { num_replicas: unknown }).num_replicas = '2';
    const layout = computeReplicaLayout([s], { devicesPerReplica: tpOf });
    expect(layout.replicasPerStage).toEqual([2]);
    expect(layout.replicaDevices.get(0)).toEqual(['0', '1']);
  });

  it('treats a missing count as 1', () => {
    const s = stage(0, {});
    delete (s.runtime as { num_replicas?: unknown }).num_replicas;
    expect(computeReplicaLayout([s], { devicesPerReplica: tpOf }).replicasPerStage).toEqual([1]);
  });

  it.each([-1, 4097, 1e9])(
    'rejects a count of %d (below 0 or past 4096) with OMNI_CONFIG_INVALID at runtime.num_replicas',
    (count) => {
      const err = catchOmni(() =>
        computeReplicaLayout([stage(0, {}), stage(1, { num_replicas: count })], { devicesPerReplica: tpOf }),
      );
      expect(err.code).toBe('OMNI_CONFIG_INVALID');
      expect(err.message).toBe(`Stage 1: num_replicas must be between 0 and 4096, got ${count}.`);
      expect(err.location).toEqual({ file: FILE, line: 13, col: 21 });
      expect(err.hint).toBeDefined();
    },
  );

  it('rejects non-integer counts instead of truncating them', () => {
    for (const bad of [1.5, 'two', true]) {
      const s = stage(0, {});
      (s.runtime as { num_replicas: unknown }).num_replicas = bad;
      const err = catchOmni(() => computeReplicaLayout([s], { devicesPerReplica: tpOf }));
      expect(err.code).toBe('OMNI_CONFIG_INVALID');
      expect(err.message).toBe(`Stage 0: num_replicas must be an integer, got ${JSON.stringify(bad)}.`);
    }
  });

  it('clamps 0 to 1 by default', () => {
    const layout = computeReplicaLayout([stage(0, { num_replicas: 0 })], { devicesPerReplica: tpOf });
    expect(layout.replicasPerStage).toEqual([1]);
    expect(layout.replicaDevices.size).toBe(0);
  });

  it('keeps 0 with allowZero', () => {
    const layout = computeReplicaLayout([stage(0, { num_replicas: 0 }), stage(1, { num_replicas: 1 })], {
      allowZero: true,
      devicesPerReplica: tpOf,
    });
    expect(layout.replicasPerStage).toEqual([0, 1]);
    expect(layout.replicaDevices.size).toBe(0);
  });

  it('#5444: num_replicas > 1 without devices gives every replica the inherited visibility (null devices)', () => {
    const layout = computeReplicaLayout([stage(0, {}), stage(1, { num_replicas: 3 }, 2)], { devicesPerReplica: tpOf });
    expect(layout.replicasPerStage).toEqual([1, 3]);
    expect(layout.replicaDevices.get(1)).toEqual([null, null, null]);
    expect(layout.replicaDevices.has(0)).toBe(false);
  });

  it('uses the plugin-supplied devices per replica (e.g. a diffusion world size)', () => {
    const layout = computeReplicaLayout([stage(0, { num_replicas: 2, devices: '0,1' })], {
      devicesPerReplica: () => 2,
    });
    expect(layout.replicaDevices.get(0)).toEqual(['0,1', '2,3']);
  });

  it('keys the map and errors by position, and points split errors at runtime.devices', () => {
    const s = stage(1, { num_replicas: 2, devices: '0,1,2' });
    s.stage_id = 7;
    const err = catchOmni(() => computeReplicaLayout([stage(0, {}), s], { devicesPerReplica: tpOf }));
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.message.startsWith('Stage 1: devices "0,1,2" has 3 id(s)')).toBe(true);
    expect(err.location).toEqual({ file: FILE, line: 14, col: 16 });
  });
});
