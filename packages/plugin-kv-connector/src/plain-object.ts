/**
 * True for `{...}` literals and `Object.create(null)` maps — the JSON/YAML mapping shape. Class
 * instances, arrays and null are not plain objects (upstream's `isinstance(x, dict)` analogue).
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
