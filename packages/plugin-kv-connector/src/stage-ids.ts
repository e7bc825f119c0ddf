/**
 * Stage ids travel as strings in the transfer config (upstream keys edges by `str(stage_id)`).
 * These helpers keep the comparisons upstream makes, without Python's coercion surprises.
 */

const DIGITS = /^[0-9]+$/;
const INT = /^[+-]?[0-9]+$/;

/**
 * Upstream's sort key for edge endpoints: an all-digits id sorts by its number, anything else by
 * its text. Python refuses to compare the two kinds; here numbers sort before text so the order is
 * total (cannot happen for configs we produce: every endpoint is a stage id's decimal form).
 */
export function compareStageIds(a: string, b: string): number {
  const an = DIGITS.test(a);
  const bn = DIGITS.test(b);
  if (an && bn) return Number(a) - Number(b);
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The decimal stage id after a `from_stage_` / `to_stage_` prefix, or null when it is not one. */
export function parseStageIdSuffix(text: string): number | null {
  if (!DIGITS.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * The integer that Python's `int(x)` would give for the values configs actually carry: integral
 * numbers and integer strings (`"2"`, `" 2 "`). Anything else — fractions, booleans, other strings —
 * is null: silently truncating `2.5` or reading `true` as 1 hides a config mistake.
 */
export function toConfigInt(value: unknown): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null;
  if (typeof value === 'string' && INT.test(value.trim())) {
    const n = Number(value.trim());
    return Number.isSafeInteger(n) ? n : null;
  }
  return null;
}

/**
 * Upstream matches a stage by `str(stage_id)` or `str(int(stage_id))`, so `1`, `"1"` and `" 1"`
 * all name stage 1. null/undefined name no stage.
 */
export function stageIdMatches(configured: number, wanted: unknown): boolean {
  if (wanted === null || wanted === undefined) return false;
  if (String(configured) === String(wanted)) return true;
  const asInt = toConfigInt(wanted);
  return asInt !== null && asInt === configured;
}
