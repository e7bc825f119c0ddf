/**
 * Message factories for the families of errors that many validators raise, so that every "must
 * be …, got …" and every unknown key reads the same wherever it comes from (core or a plugin).
 */
import { suggestions } from './config/did-you-mean.js';
import { OmniError, type ErrorCode, type ErrorContext, type SourceLocation } from './errors.js';

const MAX_SHOWN_STRING = 60;

/**
 * How a value reads in an error message: `4`, `NaN`, `"four" (a string)`, `null`, `a list`,
 * `a mapping`. Never `JSON.stringify`, which prints NaN and Infinity as `null`; long strings are
 * cut so a message stays one line.
 */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') {
    if (value.length <= MAX_SHOWN_STRING) return `${JSON.stringify(value)} (a string)`;
    return `${JSON.stringify(value.slice(0, MAX_SHOWN_STRING))}… (a string of ${value.length} characters)`;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (ArrayBuffer.isView(value)) return 'a binary array';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

/** The first dozen of `items`, and how many more there are. */
function listSome(items: readonly string[], max = 12): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/** Where and what for {@link invalidValue} and {@link unknownKey}. */
export interface ValueProblem {
  /** The key as the user reads it: `engine_args.tensor_parallel_size`, `--stage-overrides`. */
  what: string;
  location?: SourceLocation | undefined;
  context?: ErrorContext;
  /** Default OMNI_CONFIG_INVALID (or OMNI_CONFIG_UNKNOWN_KEY for unknown keys). */
  code?: ErrorCode;
}

/** "`what` must be `expected`, got <value>." at the value's location. */
export function invalidValue(problem: ValueProblem & { expected: string; got: unknown; hint: string }): OmniError {
  return new OmniError(problem.code ?? 'OMNI_CONFIG_INVALID', `${problem.what} must be ${problem.expected}, got ${describeValue(problem.got)}.`, {
    ...(problem.location ? { location: problem.location } : {}),
    ...(problem.context ? { context: problem.context } : {}),
    hint: problem.hint,
  });
}

/** "`what` has an unknown key `key`." with the closest known keys as the hint. */
export function unknownKey(problem: ValueProblem & { key: string; known: Iterable<string> }): OmniError {
  const known = [...problem.known];
  const close = suggestions(problem.key, known);
  const shown = problem.key.length > MAX_SHOWN_STRING ? `${problem.key.slice(0, MAX_SHOWN_STRING)}…` : problem.key;
  return new OmniError(problem.code ?? 'OMNI_CONFIG_UNKNOWN_KEY', `${problem.what} has an unknown key \`${shown}\`.`, {
    ...(problem.location ? { location: problem.location } : {}),
    ...(problem.context ? { context: problem.context } : {}),
    hint: close.length > 0 ? `Did you mean \`${close[0]}\`?` : `Known keys: ${listSome(known)}.`,
  });
}
