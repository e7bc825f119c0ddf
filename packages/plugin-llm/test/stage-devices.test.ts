import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { llmLockDeviceCount } from '../src/lock-device-count.js';
import { getStageDevicesPerReplica, getStageTpSize } from '../src/stage-devices.js';
import { FILE, stageAt, thrown } from './helpers.js';

describe('getStageTpSize (b.16)', () => {
  it.each([
    [undefined, 1],
    [null, 1],
    [0, 1],
    [1, 1],
    [4, 4],
    ['2', 2],
  ])('tensor_parallel_size %j → %i', (tp, expected) => {
    const engine_args = tp === undefined ? {} : { tensor_parallel_size: tp };
    expect(getStageTpSize(stageAt({ stage_id: 0, engine_args }))).toBe(expected);
  });

  it('ignores pipeline/data parallel sizes and a nested parallel_config', () => {
    const stage = stageAt({
      stage_id: 0,
      engine_args: {
        tensor_parallel_size: 2,
        pipeline_parallel_size: 4,
        data_parallel_size: 2,
        parallel_config: { tensor_parallel_size: 8 },
      },
    });
    expect(getStageTpSize(stage)).toBe(2);
  });

  it.each([['two'], [-2], [[2]], [2.7], [1.5], [65537], [1e308]])(
    'rejects %j at the key location (fractions and sizes past 65536 too)',
    (tp) => {
      const stage = stageAt(
        { stage_id: 3, engine_args: { tensor_parallel_size: tp } },
        { 'engine_args.tensor_parallel_size': [9, 30] },
      );
      const err = thrown(() => getStageTpSize(stage)) as OmniError;
      expect(err).toBeInstanceOf(OmniError);
      expect(err.code).toBe('OMNI_CONFIG_INVALID');
      expect(err.location).toEqual({ file: FILE, line: 9, col: 30 });
      expect(err.hint).toBeTruthy();
      expect(err.context.stage_id).toBe(3);
    },
  );
});

describe('getStageDevicesPerReplica (b.17, non-diffusion)', () => {
  it('is TP × local DP × PP for llm and other non-diffusion stage types (upstream main)', () => {
    const args = { tensor_parallel_size: 2, pipeline_parallel_size: 2, data_parallel_size: 3 };
    expect(getStageDevicesPerReplica(stageAt({ stage_id: 0, engine_args: args }))).toBe(12);
    expect(getStageDevicesPerReplica(stageAt({ stage_id: 0, stage_type: 'tts', engine_args: args }))).toBe(12);
    // A multi-node DP replica holds its local ranks only.
    expect(
      getStageDevicesPerReplica(stageAt({ stage_id: 0, engine_args: { ...args, data_parallel_size_local: 1 } })),
    ).toBe(4);
    const bad = thrown(() =>
      getStageDevicesPerReplica(stageAt({ stage_id: 0, engine_args: { pipeline_parallel_size: 'two' } })),
    ) as OmniError;
    expect(bad.message).toBe('pipeline_parallel_size must be an integer from 1 to 65536, got "two" (a string).');
  });

  it('refuses diffusion stages (owned by plugin-diffusion)', () => {
    const err = thrown(() => getStageDevicesPerReplica(stageAt({ stage_id: 1, stage_type: 'diffusion' }))) as OmniError;
    expect(err.code).toBe('OMNI_INTERNAL');
  });
});

describe('llmLockDeviceCount', () => {
  it('is TP × PP × DP × PCP, each defaulting to 1', () => {
    expect(llmLockDeviceCount({})).toBe(1);
    expect(llmLockDeviceCount({ tensor_parallel_size: 2 })).toBe(2);
    expect(
      llmLockDeviceCount({
        tensor_parallel_size: 2,
        pipeline_parallel_size: 3,
        data_parallel_size: 2,
        prefill_context_parallel_size: 2,
      }),
    ).toBe(24);
    expect(llmLockDeviceCount({ tensor_parallel_size: null, pipeline_parallel_size: 2 })).toBe(2);
  });

  it('counts prefill context parallelism, which devices-per-replica does not', () => {
    const engine_args = { tensor_parallel_size: 2, pipeline_parallel_size: 2, prefill_context_parallel_size: 2 };
    expect(getStageDevicesPerReplica(stageAt({ stage_id: 0, engine_args }))).toBe(4);
    expect(llmLockDeviceCount(engine_args)).toBe(8);
  });

  it('reads a nested parallel_config, where SP × CFG multiply in too', () => {
    expect(
      llmLockDeviceCount({
        tensor_parallel_size: 8,
        parallel_config: { tensor_parallel_size: 2, sequence_parallel_size: 2, cfg_parallel_size: 2 },
      }),
    ).toBe(8);
  });

  it('counts nonsense sizes as 1', () => {
    expect(llmLockDeviceCount({ tensor_parallel_size: 0, pipeline_parallel_size: 'x', data_parallel_size: '2' })).toBe(
      2,
    );
  });
});
