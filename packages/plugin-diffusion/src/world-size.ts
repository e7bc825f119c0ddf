import { OmniError } from '@omnistage/core';
import type { ErrorContext, SourceLocation } from '@omnistage/core';
import { unknownKeyHint } from './unknown-key-hint.js';
import {
  DIFFUSION_PARALLEL_FIELDS,
  DIFFUSION_PARALLEL_KEYS,
  DIFFUSION_WORLD_SIZE_KEY,
} from './parallel-config-fields.js';
import type { DiffusionParallelField } from './parallel-config-fields.js';
import { UNKNOWN_KEY_CODE, describeValue, isInt, isPlainObject } from './value-checks.js';

/**
 * Maps a `parallel_config` key (`'ulysses_degree'`) to where it was written. `''` stands for the
 * `parallel_config` mapping itself.
 */
export type ParallelConfigLocator = (key: string) => SourceLocation;

/** The validated, defaulted parallel config; numbers are the resolved degrees. */
interface ResolvedParallelConfig {
  pipeline_parallel_size: number;
  data_parallel_size: number;
  tensor_parallel_size: number;
  sequence_parallel_size: number | null;
  ulysses_degree: number;
  ring_degree: number;
  cfg_parallel_size: number;
  use_hsdp: boolean;
  hsdp_shard_size: number;
  hsdp_replicate_size: number;
  allgather_degree: number;
}

/**
 * Number of devices (ranks) one replica of a diffusion stage needs, from its
 * `engine_args.parallel_config` (upstream `DiffusionParallelConfig.world_size` at the
 * reference revision):
 *
 * - `world_size` key present → `max(1, world_size)`; it wins over the degrees (which are still
 *   type-checked, so a typo is reported either way).
 * - otherwise `pipeline × data × tensor × ulysses × ring × cfg` (each default 1);
 *   `vae_patch_parallel_size` and `enable_expert_parallel` reuse those ranks and add none.
 * - `sequence_parallel_size` defaults to `ulysses × ring` and must equal it;
 *   `cfg_parallel_size` ∈ {1, 2, 3}.
 * - `use_hsdp`: tensor and data parallel must be 1. `hsdp_shard_size: -1` derives the shard size
 *   (`world / hsdp_replicate_size`, which must divide, and the other parallelism must not be all 1);
 *   an explicit shard size either defines a standalone HSDP world (`replicate × shard`, when every
 *   other degree is 1) or must equal the product of the other degrees.
 * - `allgather_degree` (later upstream): when > 1 it replaces `ulysses × ring` as the sequence
 *   degree and requires both to be 1.
 *
 * `null`/absent config → 1. Every invalid value throws `OMNI_CONFIG_INVALID` located via `locate`
 * (upstream swallows these into 1 in one place and raises in another; we always raise).
 *
 * @param parallelConfig the `parallel_config` value as loaded (normally a mapping).
 * @param locate where each key was written; `''` = the mapping itself.
 * @param context merged into every error's context (e.g. `{ stage_id }`).
 */
export function diffusionWorldSize(
  parallelConfig: unknown,
  locate?: ParallelConfigLocator,
  context: ErrorContext = {},
): number {
  if (parallelConfig === undefined || parallelConfig === null) return 1;
  const at = (key: string): SourceLocation | undefined => locate?.(key);
  const fail = (key: string, message: string, hint: string): never => {
    throw new OmniError('OMNI_CONFIG_INVALID', message, { location: at(key), hint, context: { ...context } });
  };

  if (!isPlainObject(parallelConfig)) {
    return fail(
      '',
      `engine_args.parallel_config must be a mapping, got ${describeValue(parallelConfig)}`,
      'write it as a mapping, e.g. `parallel_config: { ulysses_degree: 2 }`',
    );
  }

  for (const key of Object.keys(parallelConfig)) {
    if (!DIFFUSION_PARALLEL_KEYS.includes(key)) {
      throw new OmniError(UNKNOWN_KEY_CODE, `engine_args.parallel_config has an unknown key "${key}"`, {
        location: at(key),
        hint: unknownKeyHint(key, DIFFUSION_PARALLEL_KEYS, 'parallel_config'),
        context: { ...context },
      });
    }
  }

  const cfg = readFields(parallelConfig, fail);
  if (Object.hasOwn(parallelConfig, DIFFUSION_WORLD_SIZE_KEY)) {
    return explicitWorldSize(parallelConfig[DIFFUSION_WORLD_SIZE_KEY], fail);
  }
  // Upstream multiplies ulysses × ring (not sequence_parallel_size) at the reference revision; they
  // are equal here, and using the sequence degree also covers AllGather-KV.
  const otherWorld =
    cfg.pipeline_parallel_size *
    cfg.data_parallel_size *
    cfg.tensor_parallel_size *
    sequenceParallelDegree(cfg, fail) *
    cfg.cfg_parallel_size;
  return cfg.use_hsdp ? hsdpWorldSize(cfg, otherWorld, fail) : otherWorld;
}

type Fail = (key: string, message: string, hint: string) => never;

/** `world_size` given outright wins over the degrees. */
function explicitWorldSize(ws: unknown, fail: Fail): number {
  if (!isInt(ws)) {
    return fail(
      DIFFUSION_WORLD_SIZE_KEY,
      `engine_args.parallel_config.world_size must be an integer, got ${describeValue(ws)}`,
      'give the number of devices per replica as a whole number, or remove world_size to derive it from the parallel degrees',
    );
  }
  // Upstream: max(1, int(world_size)). Kept, so `world_size: 0` still means one device.
  return Math.max(1, ws);
}

/** Sequence-parallel degree. AllGather-KV (later upstream) is an alternative to Ulysses × ring. */
function sequenceParallelDegree(cfg: ResolvedParallelConfig, fail: Fail): number {
  if (cfg.allgather_degree > 1 && (cfg.ulysses_degree > 1 || cfg.ring_degree > 1)) {
    fail(
      'allgather_degree',
      `allgather_degree ${cfg.allgather_degree} cannot be combined with ulysses_degree ${cfg.ulysses_degree} / ring_degree ${cfg.ring_degree}`,
      'use either allgather_degree or ulysses_degree × ring_degree for sequence parallelism, and set the other to 1',
    );
  }
  const expectedSp = cfg.allgather_degree > 1 ? cfg.allgather_degree : cfg.ulysses_degree * cfg.ring_degree;
  const expectedSpText =
    cfg.allgather_degree > 1
      ? `allgather_degree ${cfg.allgather_degree}`
      : `ulysses_degree × ring_degree = ${cfg.ulysses_degree} × ${cfg.ring_degree} = ${expectedSp}`;
  if (cfg.sequence_parallel_size !== null && cfg.sequence_parallel_size !== expectedSp) {
    fail(
      'sequence_parallel_size',
      `engine_args.parallel_config.sequence_parallel_size is ${cfg.sequence_parallel_size} but must equal ${expectedSpText}`,
      `set sequence_parallel_size to ${expectedSp}, or remove it: it defaults to ulysses_degree × ring_degree`,
    );
  }
  return expectedSp;
}

/** The world size with HSDP on, given the product of the other degrees. */
function hsdpWorldSize(cfg: ResolvedParallelConfig, otherWorld: number, fail: Fail): number {
  if (cfg.tensor_parallel_size > 1 || cfg.data_parallel_size > 1) {
    fail(
      cfg.tensor_parallel_size > 1 ? 'tensor_parallel_size' : 'data_parallel_size',
      `HSDP (use_hsdp: true) cannot be combined with tensor or data parallelism (tensor_parallel_size ${cfg.tensor_parallel_size}, data_parallel_size ${cfg.data_parallel_size})`,
      'set tensor_parallel_size and data_parallel_size to 1 when using HSDP, or turn use_hsdp off',
    );
  }
  if (cfg.hsdp_shard_size === -1) {
    if (otherWorld === 1) {
      fail(
        'hsdp_shard_size',
        'hsdp_shard_size -1 (derive) needs other parallelism, but every other parallel degree is 1',
        'for standalone HSDP set hsdp_shard_size explicitly: the world size is then hsdp_replicate_size × hsdp_shard_size',
      );
    }
    if (otherWorld % cfg.hsdp_replicate_size !== 0) {
      fail(
        'hsdp_replicate_size',
        `hsdp_replicate_size ${cfg.hsdp_replicate_size} does not divide the world size ${otherWorld} of the other parallel degrees (needed when hsdp_shard_size is -1)`,
        `choose an hsdp_replicate_size that divides ${otherWorld}, or set hsdp_shard_size explicitly`,
      );
    }
    return otherWorld;
  }
  const hsdpWorld = cfg.hsdp_replicate_size * cfg.hsdp_shard_size;
  if (otherWorld === 1) return hsdpWorld; // standalone HSDP: it alone decides the world size
  if (hsdpWorld !== otherWorld) {
    fail(
      'hsdp_shard_size',
      `HSDP dimensions hsdp_replicate_size × hsdp_shard_size = ${cfg.hsdp_replicate_size} × ${cfg.hsdp_shard_size} = ${hsdpWorld} must equal the world size ${otherWorld} of the other parallel degrees`,
      `make hsdp_replicate_size × hsdp_shard_size equal ${otherWorld}, or set hsdp_shard_size to -1 to derive it`,
    );
  }
  return otherWorld;
}

/** Type- and range-checks every present field and fills in defaults. */
function readFields(raw: Record<string, unknown>, fail: Fail): ResolvedParallelConfig {
  const read = (key: DiffusionParallelField): unknown => {
    const spec = DIFFUSION_PARALLEL_FIELDS[key];
    const value = raw[key];
    const path = `engine_args.parallel_config.${key}`;
    if (value === undefined || (value === null && 'nullable' in spec && spec.nullable)) return spec.default;
    switch (spec.kind) {
      case 'bool':
        if (typeof value !== 'boolean')
          fail(
            key,
            `${path} must be true or false, got ${describeValue(value)}`,
            `write ${key}: true or ${key}: false`,
          );
        return value;
      case 'enum':
        if (typeof value !== 'string' || !(spec.values as readonly string[]).includes(value)) {
          fail(
            key,
            `${path} must be one of ${spec.values.join(', ')}, got ${describeValue(value)}`,
            `use one of: ${spec.values.join(', ')}`,
          );
        }
        return value;
      case 'int': {
        const sentinels: readonly number[] = 'sentinels' in spec ? spec.sentinels : [];
        const allowed: readonly number[] | undefined = 'allowed' in spec ? spec.allowed : undefined;
        const accepted = allowed
          ? allowed.join(', ')
          : `an integer ≥ ${spec.min}${sentinels.length > 0 ? ` (or ${sentinels.join(', ')})` : ''}`;
        if (!isInt(value)) {
          fail(
            key,
            `${path} must be ${allowed ? `one of ${accepted}` : accepted}, got ${describeValue(value)}`,
            `write ${key} as a whole number (${accepted}), unquoted`,
          );
        }
        const n = value as number;
        if (allowed ? !allowed.includes(n) : n < spec.min && !sentinels.includes(n)) {
          const why =
            key === 'cfg_parallel_size'
              ? 'CFG parallelism splits the guidance passes (conditional, unconditional, image-conditional) over at most 3 ranks'
              : `${key} counts ranks, so it is at least ${spec.min}`;
          fail(
            key,
            `${path} must be ${allowed ? `one of ${accepted}` : accepted}, got ${n}`,
            `${why}; use ${accepted}`,
          );
        }
        return n;
      }
    }
  };
  // Every field is read (and so checked), including those that add no ranks, so a bad value is
  // reported wherever it is.
  const values = {} as Record<DiffusionParallelField, unknown>;
  for (const key of Object.keys(DIFFUSION_PARALLEL_FIELDS) as DiffusionParallelField[]) values[key] = read(key);
  return {
    pipeline_parallel_size: values.pipeline_parallel_size as number,
    data_parallel_size: values.data_parallel_size as number,
    tensor_parallel_size: values.tensor_parallel_size as number,
    sequence_parallel_size: values.sequence_parallel_size as number | null,
    ulysses_degree: values.ulysses_degree as number,
    ring_degree: values.ring_degree as number,
    cfg_parallel_size: values.cfg_parallel_size as number,
    use_hsdp: values.use_hsdp as boolean,
    hsdp_shard_size: values.hsdp_shard_size as number,
    hsdp_replicate_size: values.hsdp_replicate_size as number,
    allgather_degree: values.allgather_degree as number,
  };
}
