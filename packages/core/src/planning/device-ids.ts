/**
 * Device id lists as they appear in `runtime.devices` and in device env vars (`"0, 1,,2"`):
 * tokenising and the one ordering every lock acquirer must agree on.
 */

/** Splits a comma list, strips each token and drops empty ones (upstream's tokeniser in `split_devices_for_replicas` and `_map_device_list`). */
export function splitDeviceList(value: string): string[] {
  return value
    .split(',')
    .map((token) => token.trim())
    .filter((token) => token !== '');
}

const DECIMAL = /^\d+$/;

/**
 * Orders device ids ascending by numeric value (`"2"` before `"10"`). Device env vars may also hold
 * non-numeric ids (GPU UUIDs, MIG ids); those sort after the numeric ones by code unit, never by
 * locale, so every process on the host computes the same order — the order locks are taken in.
 */
export function compareDeviceIds(a: string, b: string): number {
  const aNum = DECIMAL.test(a);
  const bNum = DECIMAL.test(b);
  if (aNum && bNum) {
    const diff = BigInt(a) - BigInt(b);
    if (diff !== 0n) return diff < 0n ? -1 : 1;
  } else if (aNum !== bNum) {
    return aNum ? -1 : 1;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A sorted copy of `ids` ({@link compareDeviceIds} order). */
export function sortDeviceIds(ids: readonly string[]): string[] {
  return [...ids].sort(compareDeviceIds);
}

/** `ids` without repeats, first occurrence kept. */
export function uniqueDeviceIds(ids: readonly string[]): string[] {
  return [...new Set(ids)];
}
