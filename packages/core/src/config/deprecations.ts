/**
 * Keys upstream still ships in its YAML files but ignores or migrates. They are accepted (so every
 * upstream file loads) and reported as `OMNI_WARN_DEPRECATED_KEY` at the key's location.
 */
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { SourceLocation } from '../errors.js';
import { formatPath, type SourcedNode } from './sourced.js';

interface DeprecatedKey {
  /** Path pattern; `*` matches any list index or map key. */
  path: readonly string[];
  why: string;
  hint: string;
}

export const LEGACY_DEPRECATED_KEYS: readonly DeprecatedKey[] = [
  {
    path: ['stage_args', '*', 'runtime', 'max_batch_size'],
    why: 'is deprecated and ignored (upstream #1851)',
    hint: 'Use engine_args.max_num_seqs to cap the batch size, and delete runtime.max_batch_size.',
  },
  {
    path: ['runtime', 'enabled'],
    why: 'is dead configuration (removed upstream in #2343) and is ignored',
    hint: 'Delete runtime.enabled.',
  },
  {
    path: ['runtime', 'defaults'],
    why: 'is dead configuration (window_size / max_inflight defaults, removed upstream in #2343) and is ignored',
    hint: 'Delete runtime.defaults; set window_size / max_inflight on individual runtime.edges entries instead.',
  },
];

const DEPLOY_MAX_BATCH = {
  why: 'is deprecated; its value is used as max_num_seqs when the stage sets none',
  hint: 'Write max_num_seqs instead of runtime.max_batch_size.',
};

export const DEPLOY_DEPRECATED_KEYS: readonly DeprecatedKey[] = [
  { path: ['stages', '*', 'runtime', 'max_batch_size'], ...DEPLOY_MAX_BATCH },
  { path: ['platforms', '*', 'stages', '*', 'runtime', 'max_batch_size'], ...DEPLOY_MAX_BATCH },
];

/** One warning per deprecated key present in `root`, in table order then document order. */
export function deprecationWarnings(root: SourcedNode, table: readonly DeprecatedKey[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const entry of table) {
    walk(root, entry.path, [], (path, keyLoc) => {
      out.push(diagnostic('OMNI_WARN_DEPRECATED_KEY', `\`${formatPath(path)}\` ${entry.why}.`, keyLoc, entry.hint));
    });
  }
  return out;
}

function walk(
  node: SourcedNode,
  pattern: readonly string[],
  at: (string | number)[],
  hit: (path: (string | number)[], keyLoc: SourceLocation) => void,
): void {
  const [head, ...rest] = pattern;
  if (head === undefined) return;
  if (node.kind === 'map') {
    for (const [k, e] of node.entries) {
      if (head !== '*' && head !== k) continue;
      if (rest.length === 0) hit([...at, k], e.keyLoc);
      else walk(e.node, rest, [...at, k], hit);
    }
  } else if (node.kind === 'seq' && head === '*' && rest.length > 0) {
    node.items.forEach((item, i) => walk(item, rest, [...at, i], hit));
  }
}
