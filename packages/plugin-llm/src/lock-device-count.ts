import type { EngineArgs } from '@omnistage/core';

/** Reads one parallel size; anything that is not a positive number counts as 1. */
function size(source: Record<string, unknown>, key: string): number {
  const raw = source[key];
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isFinite(value)) return 1;
  const n = Math.trunc(value);
  // Upstream multiplies whatever is there; a 0 or negative size would lock no devices (or crash
  // and take no locks), which never protects anything, so it counts as 1 here.
  return n >= 1 ? n : 1;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * How many devices an LLM replica locks during init (upstream `acquire_device_locks`;
 * not the TP-only count that splits `devices`): `tensor_parallel_size × pipeline_parallel_size × data_parallel_size ×
 * prefill_context_parallel_size`, each defaulting to 1.
 *
 * This differs from {@link getStageDevicesPerReplica} (TP × local DP × PP): the lock set covers
 * every device the engine may touch. As upstream, when engine args carry a nested
 * `parallel_config` mapping the sizes are read from it instead, and its
 * `sequence_parallel_size × cfg_parallel_size` multiply in too.
 */
export function llmLockDeviceCount(engineArgs: EngineArgs): number {
  const nested = engineArgs['parallel_config'];
  const source = isPlainObject(nested) ? nested : engineArgs;
  let count =
    size(source, 'tensor_parallel_size') *
    size(source, 'pipeline_parallel_size') *
    size(source, 'data_parallel_size') *
    size(source, 'prefill_context_parallel_size');
  if (source === nested) count *= size(source, 'sequence_parallel_size') * size(source, 'cfg_parallel_size');
  return count;
}
