/**
 * Small type guards and value descriptions shared by the config validators of this plugin. YAML
 * hands us `unknown`; these keep the checks and the wording of error messages uniform.
 */

/** A YAML/JSON mapping: a non-null, non-array object. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/**
 * A safe integer given as a number. Strings like `"2"` and booleans are rejected on purpose: YAML
 * already types `2` as a number, so a quoted value is almost always a mistake worth reporting.
 */
export function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/** A finite number (YAML `.inf`/`.nan` are numbers too, and never a sensible setting). */
export function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** How a value reads in an error message: one wording for core and every plugin. */
export { describeValue } from '@omnistage/core';

/**
 * Error code for keys that no schema knows. The brief of this package asks for
 * `OMNI_CONFIG_INVALID`; core's catalogue also has `OMNI_CONFIG_UNKNOWN_KEY`, so the choice lives in
 * one constant to keep every validator of this plugin consistent if it changes.
 */
export const UNKNOWN_KEY_CODE = 'OMNI_CONFIG_INVALID' as const;
