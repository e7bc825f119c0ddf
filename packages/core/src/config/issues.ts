/**
 * Turns zod issues into {@link OmniError}s that point at the YAML node at fault and say how to fix
 * it. Issue paths are looked up in the sourced tree that was validated (the same walk as
 * `doc.getIn(path, true)` → `range[0]` → `lineCounter.linePos`, done once at parse time), walking up
 * to the nearest existing parent when the failing key is missing.
 */
import * as z from 'zod';
import { OmniError, type ErrorCode, type SourceLocation } from '../errors.js';
import { didYouMean } from './did-you-mean.js';
import { formatPath, locate, nodeAt, toJS, type SourcedNode, type SourcedPath } from './sourced.js';

/** How issues of one validation are reported. */
export interface IssueReporting {
  /** Code for wrong values and missing keys. */
  invalidCode: ErrorCode;
  /** Code for keys the schema does not know. */
  unknownKeyCode: ErrorCode;
  /** Prepended to paths in messages (e.g. `--stage-overrides`), when the tree is not a whole file. */
  label?: string;
}

/** Validates `root` against `schema` and returns the parsed value, or throws the first issue (in file order). */
export function validateSourced<S extends z.ZodType>(
  schema: S,
  root: SourcedNode,
  reporting: IssueReporting,
): z.output<S> {
  const result = schema.safeParse(toJS(root));
  if (result.success) return result.data;
  throw issuesToError(result.error.issues, schema, root, reporting);
}

interface Located {
  message: string;
  hint: string;
  code: ErrorCode;
  location: SourceLocation;
}

export function issuesToError(
  issues: readonly z.core.$ZodIssue[],
  schema: z.ZodType,
  root: SourcedNode,
  reporting: IssueReporting,
): OmniError {
  const located = flatten(issues, []).map((f) => describe(f, schema, root, reporting));
  located.sort((a, b) => a.location.line - b.location.line || a.location.col - b.location.col);
  const [first, ...rest] = located;
  if (!first) return new OmniError('OMNI_INTERNAL', 'Validation failed without issues.');
  const more = rest.length > 0 ? ` (${rest.length} more problem${rest.length > 1 ? 's' : ''} after this one)` : '';
  return new OmniError(first.code, `${first.message}${more}`, {
    location: first.location,
    hint: first.hint,
    related: rest.map((r) => r.location),
    context: { issues: rest.map((r) => ({ code: r.code, message: r.message, ...r.location })) },
  });
}

interface FlatIssue {
  issue: z.core.$ZodIssue;
  path: (string | number)[];
}

/** Unions report every branch; keep the one branch whose shape matched, so the message is specific. */
function flatten(issues: readonly z.core.$ZodIssue[], base: readonly (string | number)[]): FlatIssue[] {
  const out: FlatIssue[] = [];
  for (const issue of issues) {
    const path = [...base, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    if (issue.code === 'invalid_union') {
      let matching = issue.errors.filter(
        (branch) => !branch.every((e) => e.code === 'invalid_type' && e.path.length === 0),
      );
      // A map against `enum | map`: the enum branch fails at the root, the map branch inside; the latter is meant.
      if (matching.length > 1) matching = matching.filter((branch) => branch.some((e) => e.path.length > 0));
      const [only] = matching;
      if (matching.length === 1 && only) {
        out.push(...flatten(only, path));
        continue;
      }
    }
    out.push({ issue, path });
  }
  return out;
}

function describe(flat: FlatIssue, schema: z.ZodType, root: SourcedNode, reporting: IssueReporting): Located {
  const { issue, path } = flat;
  const where = (p: SourcedPath): string => (reporting.label ? `${reporting.label} ${formatPath(p)}` : formatPath(p));
  const field = [...path].reverse().find((p): p is string => typeof p === 'string');

  if (issue.code === 'unrecognized_keys') {
    // Report the first unknown key in file order; one fix at a time reads best.
    const keyed = issue.keys.map((key) => ({ key, location: locate(root, [...path, key], 'key') }));
    keyed.sort((a, b) => a.location.line - b.location.line || a.location.col - b.location.col);
    const { key, location } = keyed[0] ?? { key: '?', location: locate(root, path) };
    const valid = knownKeysAt(schema, path);
    const suggestion = didYouMean(key, valid);
    const inMap = path.length === 0 ? 'at the top level' : `in \`${where(path)}\``;
    const list = valid.length > 0 ? `Valid keys here: ${valid.join(', ')}.` : 'Remove it.';
    return {
      code: reporting.unknownKeyCode,
      message: `Unknown key \`${key}\` ${inMap}.`,
      hint: suggestion ? `${capitalise(suggestion)} ${list}` : `Remove or rename it. ${list}`,
      location,
    };
  }

  const node = nodeAt(root, path);
  const location = locate(root, path);
  // Issues do not say "integer" for a non-number input, so the schema itself is described.
  const applicable = schemasAt(schema, path).filter(
    (s) => issue.code !== 'invalid_type' || matchesExpected(s, issue.expected),
  );
  const expected = describeSchemas(applicable) ?? expectedText(issue);
  if (node === undefined && issue.code === 'invalid_type') {
    const key = path[path.length - 1];
    const parent = path.slice(0, -1);
    return {
      code: reporting.invalidCode,
      message: `\`${where(parent)}\` is missing the required key \`${String(key)}\`.`,
      hint: (field && FIELD_HINTS[field]) ?? `Add \`${String(key)}:\` with ${expected}.`,
      location,
    };
  }

  const got = received(node);
  let problem: string;
  switch (issue.code) {
    case 'invalid_type':
      problem = `must be ${expected}, but it is ${got}`;
      break;
    case 'too_small':
      problem =
        issue.origin === 'array' || issue.origin === 'string' || issue.origin === 'set'
          ? 'must not be empty'
          : `must be ${issue.inclusive ? '≥' : '>'} ${String(issue.minimum)}, but it is ${got}`;
      break;
    case 'too_big':
      problem = `must be ${issue.inclusive ? '≤' : '<'} ${String(issue.maximum)}, but it is ${got}`;
      break;
    case 'invalid_value': {
      const values = issue.values.map((v) => JSON.stringify(v));
      const guess =
        typeof toJS(node ?? root) === 'string'
          ? didYouMean(String(toJS(node ?? root)), issue.values.map(String))
          : undefined;
      problem = `must be one of ${values.join(', ')}, but it is ${got}${guess ? ` (${guess})` : ''}`;
      break;
    }
    case 'invalid_union':
      problem = `must be ${expected}, but it is ${got}`;
      break;
    default:
      problem = issue.message.replace(/\.$/, '');
  }
  const fallback = issue.code === 'custom' ? 'Fix the value as described.' : `Change it to ${expected}.`;
  return {
    code: reporting.invalidCode,
    message: `\`${where(path)}\` ${problem}.`,
    hint: (field && FIELD_HINTS[field]) ?? fallback,
    location,
  };
}

/** Whether `s` is the branch an `invalid_type` issue with `expected` was raised by. */
function matchesExpected(s: z.ZodType, expected: string): boolean {
  switch (expected) {
    case 'number':
    case 'int':
      return s instanceof z.ZodNumber;
    case 'string':
      return s instanceof z.ZodString;
    case 'boolean':
      return s instanceof z.ZodBoolean;
    case 'object':
    case 'record':
      return s instanceof z.ZodObject || s instanceof z.ZodRecord;
    case 'array':
      return s instanceof z.ZodArray;
    default:
      return true;
  }
}

/** Fix-it hints for values users most often get wrong, keyed by the field name. */
const FIELD_HINTS: Record<string, string> = {
  stage_id: 'Give every stage a unique integer id, e.g. `stage_id: 0`.',
  devices: 'Write logical device indices as a quoted string, e.g. `devices: "0,1"` (a YAML list is not accepted).',
  num_replicas: 'Use a whole number ≥ 0, e.g. `num_replicas: 2`.',
  min_ready: 'Use a whole number ≥ 1, e.g. `min_ready: 2` (live replicas the head waits for).',
  engine_input_source: 'List the ids of the upstream stages as integers, e.g. `engine_input_source: [0]`.',
  env: 'Use a map of variable names to scalar values, e.g. `env: { HCCL_IF_BASE_PORT: 23000 }`.',
  policy: 'Use `policy: never` or `policy: on-failure`.',
  restart:
    'Write `restart: on-failure` (or `never`), or the map form `restart: { policy: on-failure, max_restarts: 3, backoff_ms: 500 }`.',
  stage_args: 'List the stages under `stage_args:`, each with at least `stage_id:`.',
  stages: 'List the stages under `stages:`, each with at least `stage_id:`.',
  gpu_memory_utilization: 'Use a fraction of device memory in (0, 1], e.g. `gpu_memory_utilization: 0.9`.',
  tensor_parallel_size: 'Use a whole number ≥ 1, e.g. `tensor_parallel_size: 2`.',
  plugins: 'List npm package names or `{ path: ./plugin.js, options: {} }` entries.',
};

function expectedOf(issue: z.core.$ZodIssue): string {
  if (issue.code !== 'invalid_type') return 'a valid value';
  const fmt = (issue as { format?: string }).format;
  if (issue.expected === 'int' || fmt === 'safeint' || fmt === 'int32') return 'an integer';
  return describeType(issue.expected);
}

function describeType(t: string): string {
  switch (t) {
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'object':
    case 'record':
    case 'map':
      return 'a map';
    case 'array':
      return 'a list';
    case 'null':
      return 'empty';
    default:
      return t;
  }
}

function unionExpected(issue: z.core.$ZodIssue): string {
  if (issue.code !== 'invalid_union') return 'a valid value';
  const parts = new Set<string>();
  for (const branch of issue.errors) for (const e of branch) if (e.path.length === 0) parts.add(expectedOf(e));
  const list = [...parts];
  if (list.length === 0) return 'a valid value';
  return list.length === 1 ? (list[0] ?? '') : `${list.slice(0, -1).join(', ')} or ${list[list.length - 1] ?? ''}`;
}

function expectedText(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') return expectedOf(issue);
  if (issue.code === 'invalid_union') return unionExpected(issue);
  if (issue.code === 'too_small' || issue.code === 'too_big') return 'a value in the allowed range';
  return 'a valid value';
}

function received(node: SourcedNode | undefined): string {
  if (node === undefined) return 'missing';
  if (node.kind === 'seq') return 'a list';
  if (node.kind === 'map') return 'a map';
  const v = node.value;
  if (v === null) return 'empty';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  return String(v);
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The keys a strict map at `path` accepts (deprecated keys left out), found by walking the schema. */
export function knownKeysAt(schema: z.ZodType, path: SourcedPath): string[] {
  const out = new Set<string>();
  for (const s of schemasAt(schema, path)) {
    if (!(s instanceof z.ZodObject)) continue;
    for (const [k, v] of Object.entries(s.shape as Record<string, z.ZodType>)) {
      if ((v.meta() as { deprecated?: boolean } | undefined)?.deprecated !== true) out.add(k);
    }
  }
  return [...out];
}

/** The schemas that apply at `path` (wrappers removed, unions spread into their options). */
function schemasAt(schema: z.ZodType, path: SourcedPath): z.ZodType[] {
  const out: z.ZodType[] = [];
  const visit = (node: z.ZodType, rest: SourcedPath, depth: number): void => {
    if (depth > 64) return;
    const s = unwrap(node);
    if (s instanceof z.ZodUnion) {
      for (const option of s.options as readonly z.ZodType[]) visit(option, rest, depth + 1);
      return;
    }
    const [head, ...tail] = rest;
    if (head === undefined) {
      out.push(s);
    } else if (s instanceof z.ZodObject) {
      const child = (s.shape as Record<string, z.ZodType | undefined>)[String(head)];
      if (child) visit(child, tail, depth + 1);
    } else if (s instanceof z.ZodArray && typeof head === 'number') {
      visit(s.element as z.ZodType, tail, depth + 1);
    } else if (s instanceof z.ZodRecord) {
      visit(s.valueType as z.ZodType, tail, depth + 1);
    }
  };
  visit(schema, path, 0);
  return out;
}

/** "an integer", "a string or an integer", ... for the schemas that apply at a path. */
function describeSchemas(schemas: readonly z.ZodType[]): string | undefined {
  const parts = [...new Set(schemas.map(describeSchema).filter((d): d is string => d !== undefined))];
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(', ')} or ${parts[parts.length - 1] ?? ''}`;
}

function describeSchema(s: z.ZodType): string | undefined {
  if (s instanceof z.ZodNumber) return s.format !== null && /int/.test(s.format) ? 'an integer' : 'a number';
  if (s instanceof z.ZodString) return 'a string';
  if (s instanceof z.ZodBoolean) return 'true or false';
  if (s instanceof z.ZodObject || s instanceof z.ZodRecord) return 'a map';
  if (s instanceof z.ZodArray) return 'a list';
  if (s instanceof z.ZodNull) return 'empty';
  if (s instanceof z.ZodEnum) return `one of ${s.options.map((o) => JSON.stringify(o)).join(', ')}`;
  return undefined;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  for (let i = 0; i < 16; i++) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault)
      s = s.unwrap() as z.ZodType;
    else if (s instanceof z.ZodPipe) s = s.in as z.ZodType;
    else break;
  }
  return s;
}
