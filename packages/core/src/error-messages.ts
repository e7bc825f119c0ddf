/**
 * Message factories for the families of errors that many validators raise, so that every "must
 * be …, got …" and every unknown key reads the same wherever it comes from (core or a plugin).
 */
import { suggestions } from './config/did-you-mean.js';
import { diagnostic, type Diagnostic } from './diagnostics.js';
import { type ErrorCode, type ErrorContext, OmniError, type OmniErrorOptions, type SourceLocation } from './errors.js';

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
  return new OmniError(
    problem.code ?? 'OMNI_CONFIG_INVALID',
    `${problem.what} must be ${problem.expected}, got ${describeValue(problem.got)}.`,
    {
      ...(problem.location ? { location: problem.location } : {}),
      ...(problem.context ? { context: problem.context } : {}),
      hint: problem.hint,
    },
  );
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

/** Where an engine arg is, for the engine-args messages below. */
export interface EngineArgSite {
  stageId: number;
  key: string;
  location: SourceLocation;
}

/** An engine arg one edit or three away from a key the planner reads: refused, as planning without it changes what runs. */
export function misspeltPlannerKey(site: EngineArgSite & { intended: string }): OmniError {
  return new OmniError(
    'OMNI_CONFIG_INVALID',
    `Stage ${site.stageId}: engine_args.${site.key} is not \`${site.intended}\`, which the planner reads to place and admit replicas; ` +
      'planned without it, the stage would run as if it were unset.',
    {
      location: site.location,
      hint: `Did you mean \`${site.intended}\`? Rename the key.`,
      context: { stage_id: site.stageId, key: site.key },
    },
  );
}

/** What the engine-args messages say about the engine and the keys it takes. */
export interface EngineArgsOwner extends EngineArgSite {
  stageType: string;
  engine: string;
  /** Every key the engine takes, sorted. */
  known: readonly string[];
}

/** "Did you mean `x`?" or the known keys. */
function knownKeysHint(key: string, known: readonly string[]): string {
  const [close] = suggestions(key, known, 1);
  return close === undefined ? `It takes: ${listSome(known, 20)}.` : `Did you mean \`${close}\`?`;
}

/** Warning: a key the stage's engine does not take (it would be passed on, and ignored or refused there). */
export function unknownEngineArg(owner: EngineArgsOwner): Diagnostic {
  return diagnostic(
    'OMNI_WARN_ENGINE_ARG_UNKNOWN',
    `stage ${owner.stageId}: engine "${owner.engine}" (${owner.stageType}) does not take engine_args.${owner.key}; it has no effect.`,
    owner.location,
    `${knownKeysHint(owner.key, owner.known)} Correct the key, or remove it if it was meant for another engine.`,
  );
}

/** A bare `--stage-overrides` key that is neither an override key nor an arg of the stage's engine. */
export function unknownOverrideKey(owner: EngineArgsOwner & { overrideKeys: readonly string[] }): OmniError {
  const all = [...owner.overrideKeys, ...owner.known];
  const [close] = suggestions(owner.key, all, 1);
  return new OmniError(
    'OMNI_CONFIG_OVERRIDE_INVALID',
    `--stage-overrides: stage ${owner.stageId} has no key \`${owner.key}\`: it is not an override key, and engine "${owner.engine}" (${owner.stageType}) does not take it as an engine arg.`,
    {
      location: owner.location,
      context: { stage_id: owner.stageId, key: owner.key },
      hint:
        `${close === undefined ? '' : `Did you mean \`${close}\`? `}Allowed: ${listSome(owner.overrideKeys, owner.overrideKeys.length)}; ` +
        `and the engine args of "${owner.engine}": ${listSome(owner.known, 20)}.`,
    },
  );
}

/** A value a plugin engine's zod schema refuses. */
export function engineArgValueInvalid(site: {
  stageId: number;
  engine: string;
  path: string;
  message: string;
  location: SourceLocation;
}): OmniError {
  const what = site.path === '' ? 'engine_args' : `engine_args.${site.path}`;
  return new OmniError(
    'OMNI_CONFIG_INVALID',
    `Stage ${site.stageId}: ${what} is not valid for engine "${site.engine}": ${site.message}.`,
    {
      location: site.location,
      context: { stage_id: site.stageId },
      hint: `Change ${what} to what engine "${site.engine}" accepts (its plugin documents its engine args).`,
    },
  );
}

/** How every message names a replica: `stage 1 replica 0`, with its process `stage 1 replica 0 (pid 42)`. */
export function replicaLabel(r: { readonly stage_id: number; readonly replica_id: number }, pid?: number): string {
  return `stage ${r.stage_id} replica ${r.replica_id}${pid === undefined ? '' : ` (pid ${pid})`}`;
}

/** How every message says why a process ended: `exit code 3` or `killed by signal SIGKILL`. */
export function describeExit(exit: { readonly code: number | null; readonly signal: string | null }): string {
  return exit.signal ? `killed by signal ${exit.signal}` : `exit code ${exit.code}`;
}

/** Why a launch wait usually ends early; the hint of the cancellations of a bring-up. */
export const LAUNCH_CANCELLED_HINT =
  'the launch was cancelled (another replica failed, the pipeline deadline expired, or Ctrl-C)';

/** What a cancellation carries besides its words. */
export type CancelOptions = Pick<OmniErrorOptions, 'context' | 'hint' | 'cause'>;

/** `OMNI_CANCELLED`: "`what` was cancelled" (a wait, an attach, a bring-up). */
export function cancelled(what: string, options: CancelOptions = {}): OmniError {
  return new OmniError('OMNI_CANCELLED', `${what} was cancelled`, options);
}

/** `OMNI_CANCELLED` for a request its caller or the pipeline aborted: "request `id` was aborted". */
export function requestAborted(requestId: string, options: CancelOptions = {}): OmniError {
  return new OmniError('OMNI_CANCELLED', `request ${requestId} was aborted`, options);
}

/** `OMNI_CANCELLED` for work the stopping pipeline ends: "the pipeline is stopping (`why`)". */
export function pipelineStopping(why?: string): OmniError {
  return new OmniError('OMNI_CANCELLED', `the pipeline is stopping${why === undefined ? '' : ` (${why})`}`);
}
