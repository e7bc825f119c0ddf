import type { SourceLocation } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { diffusionWorldSize } from '../src/world-size.js';
import { errorOf } from './error-of.js';

/** A locator that names the key in the file field, so tests can see which key an error points at. */
const locate = (key: string): SourceLocation => ({ file: `parallel_config[${key}]`, line: 1, col: 1 });
const locationOf = locate;

describe('diffusionWorldSize', () => {
  it('is 1 without a parallel config or with an empty one', () => {
    expect(diffusionWorldSize(undefined)).toBe(1);
    expect(diffusionWorldSize(null)).toBe(1);
    expect(diffusionWorldSize({})).toBe(1);
  });

  it('multiplies pipeline × data × tensor × ulysses × ring × cfg', () => {
    expect(diffusionWorldSize({ tensor_parallel_size: 2 })).toBe(2);
    expect(diffusionWorldSize({ pipeline_parallel_size: 2, data_parallel_size: 3 })).toBe(6);
    expect(
      diffusionWorldSize({ tensor_parallel_size: 2, ulysses_degree: 2, ring_degree: 2, cfg_parallel_size: 3 }),
    ).toBe(24);
    expect(
      diffusionWorldSize({
        pipeline_parallel_size: 2,
        data_parallel_size: 2,
        tensor_parallel_size: 2,
        ulysses_degree: 2,
        ring_degree: 2,
        cfg_parallel_size: 2,
      }),
    ).toBe(64);
  });

  it('does not count VAE patch parallelism or expert parallelism', () => {
    expect(diffusionWorldSize({ vae_patch_parallel_size: 4, enable_expert_parallel: true, ulysses_degree: 2 })).toBe(2);
  });

  it('accepts sequence_parallel_size equal to ulysses × ring (the glm_image fixture)', () => {
    expect(
      diffusionWorldSize({ tensor_parallel_size: 1, sequence_parallel_size: 4, ulysses_degree: 4, ring_degree: 1 }),
    ).toBe(4);
    expect(diffusionWorldSize({ sequence_parallel_size: 6, ulysses_degree: 3, ring_degree: 2 })).toBe(6);
    expect(diffusionWorldSize({ sequence_parallel_size: null, ulysses_degree: 2 })).toBe(2);
  });

  it('rejects sequence_parallel_size that differs from ulysses × ring, at that key', () => {
    const err = errorOf(() =>
      diffusionWorldSize({ sequence_parallel_size: 4, ulysses_degree: 2 }, locate, { stage_id: 5 }),
    );
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toContain('sequence_parallel_size is 4');
    expect(err.message).toContain('2 × 1 = 2');
    expect(err.location).toEqual(locationOf('sequence_parallel_size'));
    expect(err.hint).toContain('set sequence_parallel_size to 2');
    expect(err.context.stage_id).toBe(5);
  });

  it('rejects cfg_parallel_size outside {1, 2, 3}', () => {
    expect(diffusionWorldSize({ cfg_parallel_size: 3 })).toBe(3);
    const err = errorOf(() => diffusionWorldSize({ cfg_parallel_size: 4 }, locate));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toContain('cfg_parallel_size must be one of 1, 2, 3, got 4');
    expect(err.location).toEqual(locationOf('cfg_parallel_size'));
    expect(err.hint).toMatch(/at most 3 ranks/);
  });

  it('rejects non-integer and non-positive degrees, at the key', () => {
    for (const bad of [0, -2, 1.5, '2', true, null, [2]]) {
      const err = errorOf(() => diffusionWorldSize({ tensor_parallel_size: bad }, locate));
      expect(err.code).toBe('OMNI_CONFIG_INVALID');
      expect(err.location).toEqual(locationOf('tensor_parallel_size'));
      expect(err.hint).toBeTruthy();
    }
    expect(errorOf(() => diffusionWorldSize({ ring_degree: 0 })).message).toContain(
      'ring_degree must be an integer ≥ 1, got 0',
    );
    expect(errorOf(() => diffusionWorldSize({ use_hsdp: 'yes' })).message).toContain('use_hsdp must be true or false');
    expect(errorOf(() => diffusionWorldSize({ ulysses_mode: 'fast' })).message).toContain('strict, advanced_uaa');
    expect(errorOf(() => diffusionWorldSize({ hsdp_shard_size: 0 })).message).toContain('(or -1)');
  });

  it('rejects unknown keys with a did-you-mean', () => {
    const err = errorOf(() => diffusionWorldSize({ ulysses_degre: 2 }, locate));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toContain('"ulysses_degre"');
    expect(err.location).toEqual(locationOf('ulysses_degre'));
    expect(err.hint).toBe('did you mean "ulysses_degree"?');
  });

  it('rejects a parallel_config that is not a mapping, at the mapping', () => {
    const err = errorOf(() => diffusionWorldSize([1, 2], locate));
    expect(err.message).toContain('must be a mapping, got a list');
    expect(err.location).toEqual(locationOf(''));
  });

  describe('world_size key', () => {
    it('wins over the degrees', () => {
      expect(diffusionWorldSize({ world_size: 3, tensor_parallel_size: 8, ulysses_degree: 2 })).toBe(3);
      expect(diffusionWorldSize({ world_size: 2, sequence_parallel_size: 7 })).toBe(2);
    });
    it('is clamped to at least 1, like upstream max(1, int(...))', () => {
      expect(diffusionWorldSize({ world_size: 0 })).toBe(1);
      expect(diffusionWorldSize({ world_size: -4 })).toBe(1);
    });
    it('must be an integer', () => {
      const err = errorOf(() => diffusionWorldSize({ world_size: '4' }, locate));
      expect(err.code).toBe('OMNI_CONFIG_INVALID');
      expect(err.location).toEqual(locationOf('world_size'));
    });
    it('does not hide a bad value of another key', () => {
      expect(() => diffusionWorldSize({ world_size: 2, cfg_parallel_size: 9 })).toThrow(/cfg_parallel_size/);
    });
  });

  describe('HSDP', () => {
    it('rejects tensor or data parallelism with HSDP', () => {
      const tp = errorOf(() =>
        diffusionWorldSize({ use_hsdp: true, tensor_parallel_size: 2, hsdp_shard_size: 2 }, locate),
      );
      expect(tp.message).toContain('cannot be combined with tensor or data parallelism');
      expect(tp.location).toEqual(locationOf('tensor_parallel_size'));
      const dp = errorOf(() =>
        diffusionWorldSize({ use_hsdp: true, data_parallel_size: 2, hsdp_shard_size: 2 }, locate),
      );
      expect(dp.location).toEqual(locationOf('data_parallel_size'));
      expect(dp.hint).toContain('tensor_parallel_size and data_parallel_size to 1');
    });

    it('ignores the HSDP sizes when use_hsdp is off', () => {
      expect(diffusionWorldSize({ hsdp_shard_size: 8, hsdp_replicate_size: 2, tensor_parallel_size: 2 })).toBe(2);
    });

    it('derives the shard size (-1) from the other parallelism', () => {
      expect(diffusionWorldSize({ use_hsdp: true, ulysses_degree: 4 })).toBe(4);
      expect(diffusionWorldSize({ use_hsdp: true, ulysses_degree: 4, hsdp_replicate_size: 2 })).toBe(4);
      expect(
        diffusionWorldSize({
          use_hsdp: true,
          ulysses_degree: 2,
          cfg_parallel_size: 2,
          hsdp_shard_size: -1,
          hsdp_replicate_size: 4,
        }),
      ).toBe(4);
    });

    it('cannot derive the shard size when every other degree is 1', () => {
      const err = errorOf(() => diffusionWorldSize({ use_hsdp: true }, locate));
      expect(err.message).toContain('every other parallel degree is 1');
      expect(err.location).toEqual(locationOf('hsdp_shard_size'));
      expect(err.hint).toContain('hsdp_replicate_size × hsdp_shard_size');
    });

    it('requires the replicate size to divide the derived world', () => {
      const err = errorOf(() =>
        diffusionWorldSize({ use_hsdp: true, ulysses_degree: 4, hsdp_replicate_size: 3 }, locate),
      );
      expect(err.message).toContain('does not divide the world size 4');
      expect(err.location).toEqual(locationOf('hsdp_replicate_size'));
    });

    it('uses replicate × shard as a standalone world when the other degrees are all 1', () => {
      expect(diffusionWorldSize({ use_hsdp: true, hsdp_shard_size: 4, hsdp_replicate_size: 2 })).toBe(8);
      expect(diffusionWorldSize({ use_hsdp: true, hsdp_shard_size: 4 })).toBe(4);
    });

    it('requires an explicit shard size to match the other parallelism when there is some', () => {
      expect(
        diffusionWorldSize({ use_hsdp: true, ulysses_degree: 4, hsdp_shard_size: 2, hsdp_replicate_size: 2 }),
      ).toBe(4);
      const err = errorOf(() =>
        diffusionWorldSize({ use_hsdp: true, ulysses_degree: 4, hsdp_shard_size: 4, hsdp_replicate_size: 2 }, locate),
      );
      expect(err.message).toContain('2 × 4 = 8 must equal the world size 4');
      expect(err.location).toEqual(locationOf('hsdp_shard_size'));
    });
  });

  describe('allgather_degree (later upstream)', () => {
    it('replaces ulysses × ring as the sequence degree', () => {
      expect(diffusionWorldSize({ allgather_degree: 4 })).toBe(4);
      expect(diffusionWorldSize({ allgather_degree: 4, sequence_parallel_size: 4, cfg_parallel_size: 2 })).toBe(8);
    });
    it('cannot be combined with ulysses or ring', () => {
      expect(() => diffusionWorldSize({ allgather_degree: 2, ulysses_degree: 2 })).toThrow(/cannot be combined/);
    });
  });
});
