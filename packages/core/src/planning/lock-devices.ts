import { OmniError, type SourceLocation } from '../errors.js';
import { sortDeviceIds, uniqueDeviceIds } from './device-ids.js';

const NESTED_FACTORS = [
  'tensor_parallel_size',
  'pipeline_parallel_size',
  'data_parallel_size',
  'prefill_context_parallel_size',
  'sequence_parallel_size',
  'cfg_parallel_size',
] as const;

const TOP_LEVEL_FACTORS = [
  'tensor_parallel_size',
  'pipeline_parallel_size',
  'data_parallel_size',
  'prefill_context_parallel_size',
] as const;

/**
 * How many devices a replica locks during init (the count of upstream's
 * `acquire_device_locks`). With a `parallel_config`
 * mapping: TP×PP×DP×PCP×SP×CFG of it; otherwise TP×PP×DP×PCP of the top-level engine args.
 * Each factor defaults to 1.
 *
 * This is deliberately not the devices-per-replica formula used to split `devices` (LLM: TP only,
 * diffusion: the parallel world size); the two differ upstream and plans must reproduce both.
 */
export function lockDeviceCount(engineArgs: Readonly<Record<string, unknown>>): number {
  const nested = engineArgs['parallel_config'];
  if (isRecord(nested)) return NESTED_FACTORS.reduce((n, key) => n * factor(nested[key]), 1);
  return TOP_LEVEL_FACTORS.reduce((n, key) => n * factor(engineArgs[key]), 1);
}

/**
 * A factor of the product: a positive integer, or an integer string. Anything else (null, a
 * non-numeric string, 0, a fraction) counts as 1, so a bad value never sizes the lock set to zero;
 * the engine validates its own parallel sizes.
 */
function factor(value: unknown): number {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? n : 1;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Options of {@link selectLockDevices}. */
export interface SelectLockDevicesOptions {
  replicaId?: number;
  /** Where the stage's devices were written; attached to the error. */
  location?: SourceLocation;
}

/**
 * The devices a replica locks during init: the first `count` distinct ids of `physical` in env
 * order (the devices its ranks `0..count-1` use), then sorted ascending numerically — the one
 * global order that keeps two acquirers from deadlocking AB/BA.
 *
 * Deviation: fewer than `count` distinct devices is an error; upstream swallows it and starts the
 * replica without any lock. Repeated ids count once (locking one device twice would wait on itself).
 *
 * @param physical the replica's physical devices (all visible ones when it inherits).
 * @throws OmniError `OMNI_PLAN_DEVICES`
 */
export function selectLockDevices(
  physical: readonly string[],
  count: number,
  stageIdx: number,
  options: SelectLockDevicesOptions = {},
): string[] {
  const candidates = uniqueDeviceIds(physical);
  if (candidates.length < count) {
    const who =
      options.replicaId === undefined ? `Stage ${stageIdx}` : `Stage ${stageIdx} replica ${options.replicaId}`;
    const available = candidates.length === 0 ? 'none' : `[${candidates.join(', ')}]`;
    throw new OmniError(
      'OMNI_PLAN_DEVICES',
      `${who} needs ${count} device(s) (tensor × pipeline × data × context parallel) but only ` +
        `${candidates.length} are available: ${available}.`,
      {
        location: options.location,
        context: { stage_idx: stageIdx, replica_id: options.replicaId, phase: 'plan' },
        hint: `give the stage at least ${count} devices in runtime.devices, or lower its parallel sizes`,
      },
    );
  }
  return sortDeviceIds(candidates.slice(0, count));
}
