/**
 * Deep copy of JSON-like configuration data: plain objects and arrays are copied recursively,
 * everything else (primitives, class instances, functions) is kept by reference. Unlike
 * `structuredClone` this never throws on a function or class instance that a programmatic caller
 * may have put into engine args, and it keeps their identity.
 */
export function deepCopy<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => deepCopy(v)) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = deepCopy(v);
    return out as T;
  }
  return value;
}
