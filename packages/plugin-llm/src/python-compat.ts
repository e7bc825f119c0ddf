/**
 * The few Python semantics the upstream engine-args rules depend on, spelled out for plain JSON
 * values so the port keeps the same observable results.
 */
import path from 'node:path';

/**
 * Python's `bool(x)` for JSON-like values: `null`/`undefined`, `false`, `0`, `NaN`, `''`, `[]` and
 * `{}` are falsy, everything else is truthy. Upstream tests `async_chunk` and
 * `default_sampling_params.extra_args` this way, so `extra_args: {}` does not count as "has extra
 * args".
 */
export function isPyTruthy(value: unknown): boolean {
  if (value === null || value === undefined) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0 && !Number.isNaN(value);
  if (typeof value === 'bigint') return value !== 0n;
  if (typeof value === 'string') return value.length > 0;
  if (Array.isArray(value)) return value.length > 0;
  if (value instanceof Map || value instanceof Set) return value.size > 0;
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.keys(value).length > 0;
  }
  return true;
}

/**
 * Python's `os.path.join(base, part)` for two components: an absolute `part` replaces `base`, and
 * nothing is normalised (unlike Node's `path.join`, which would rewrite `./x` or `a/../b` and so
 * change the path vLLM receives).
 */
export function pyPathJoin(base: string, part: string): string {
  if (path.isAbsolute(part)) return part;
  if (base === '' || base.endsWith(path.sep)) return `${base}${part}`;
  return `${base}${path.sep}${part}`;
}
