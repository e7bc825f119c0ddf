/**
 * Freezes `value` and every plain object and array it reaches, and returns it. Class instances (a
 * stage's `LocationIndex`, a Map) and functions (an input processor) are left as they are: they
 * keep their own state and are not plan data.
 */
export function deepFreeze<T>(value: T, seen: WeakSet<object> = new WeakSet()): T {
  if (typeof value !== 'object' || value === null || seen.has(value)) return value;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null && !Array.isArray(value)) return value;
  seen.add(value);
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v, seen);
  return value;
}
