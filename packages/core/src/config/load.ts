/**
 * Reading and parsing configuration text. This is the only module that touches the `yaml` package
 * (its 3.x line drops the node APIs used here, so the blast radius of an upgrade stays in one file).
 * The output is a {@link SourcedNode} tree with a file:line:col on every key and value.
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { OmniError, type ErrorCode, type SourceLocation } from '../errors.js';
import type { SourcedEntry, SourcedMap, SourcedNode } from './sourced.js';

/** Reads a file as UTF-8 text. Injectable so tests and embedders can serve configs from memory. */
export type ReadFile = (path: string) => string | Promise<string>;

export const defaultReadFile: ReadFile = (path) => fsReadFile(path, 'utf8');

/** One parsed configuration text. */
export interface SourcedDocument {
  /** Absolute path, `<inline>` or a pseudo name such as `<stage-overrides>`. */
  file: string;
  root: SourcedNode;
  /** Non-fatal YAML findings (unresolved tags, ...). */
  warnings: Diagnostic[];
}

/** Alias expansion budget: guards against "billion laughs" documents. */
const MAX_NODES = 100_000;

const PARSE_HINTS: Record<string, string> = {
  DUPLICATE_KEY: 'Remove or rename one of the two keys; each key may appear once per map.',
  BAD_INDENT: 'Align the entries of a map or list at the same column and close flow collections (`]`, `}`).',
  TAB_AS_INDENT: 'Indent with spaces; YAML does not allow tabs for indentation.',
  MULTIPLE_DOCS: 'A pipeline file holds a single YAML document; remove the extra `---` separator.',
  MISSING_CHAR: 'Add the missing character at this position.',
};

/**
 * Parses YAML (or JSON, a subset of YAML 1.2) into a sourced tree. Merge keys (`<<: *base`) are
 * honoured; duplicate keys and syntax errors throw `errorCode` (default `OMNI_CONFIG_PARSE`) at
 * the exact line and column.
 */
export function parseSourced(text: string, file: string, errorCode: ErrorCode = 'OMNI_CONFIG_PARSE'): SourcedDocument {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourceLocation => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  const [first, ...rest] = doc.errors;
  if (first) {
    const loc = at(first.pos[0]);
    const detail = first.code === 'DUPLICATE_KEY' ? `duplicate key \`${keyAt(text, first.pos[0])}\`` : first.message;
    const more = rest.length > 0 ? ` (and ${rest.length} more YAML error${rest.length > 1 ? 's' : ''})` : '';
    throw new OmniError(errorCode, `${file} is not valid YAML: ${detail}${more}.`, {
      location: loc,
      hint: PARSE_HINTS[first.code] ?? 'Fix the YAML syntax at this position.',
      context: { yaml_code: first.code },
    });
  }
  const warnings = doc.warnings.map((w) => diagnostic('OMNI_WARN_YAML', w.message, at(w.pos[0])));
  const converter = new Converter(doc, at, errorCode);
  const root = doc.contents ? converter.node(doc.contents) : { kind: 'scalar' as const, value: null, loc: at(0), empty: true };
  return { file, root, warnings };
}

/** The text of the map key starting at `offset` (yaml reports duplicate keys by position only). */
function keyAt(text: string, offset: number): string {
  const m = /^(?:"([^"\n]*)"|'([^'\n]*)'|([^:#\n]*?))\s*:/.exec(text.slice(offset));
  return (m?.[1] ?? m?.[2] ?? m?.[3] ?? '').trim() || '?';
}

class Converter {
  #count = 0;

  constructor(
    private readonly doc: Document,
    private readonly at: (offset: number) => SourceLocation,
    private readonly errorCode: ErrorCode,
  ) {}

  node(node: unknown): SourcedNode {
    if (++this.#count > MAX_NODES) {
      throw new OmniError(this.errorCode, `The document expands to more than ${MAX_NODES} values through aliases.`, {
        hint: 'Use fewer nested aliases (`*name`); a pipeline file never needs this many values.',
      });
    }
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (!target) throw this.fail(node, `The alias \`*${node.source}\` has no anchor.`, 'Define `&name` before using `*name`.');
      // The alias site is where the user wrote the value; nested values keep their anchor positions.
      return { ...this.node(target), loc: this.loc(node) };
    }
    if (isScalar(node)) {
      const raw: unknown = node.value;
      const value =
        raw === null || raw === undefined
          ? null
          : typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'boolean'
            ? raw
            : typeof raw === 'bigint'
              ? Number(raw)
              : String(raw);
      const empty = value === null && (node.range ? node.range[0] === node.range[1] : true);
      return { kind: 'scalar', value, loc: this.loc(node), ...(empty ? { empty } : {}) };
    }
    if (isSeq(node)) {
      return { kind: 'seq', items: node.items.map((it) => this.item(it, node)), loc: this.loc(node) };
    }
    if (isMap(node)) return this.map(node.items, node);
    throw new OmniError(this.errorCode, 'This YAML construct is not supported in a pipeline file.', {
      hint: 'Use plain maps, lists and scalars.',
    });
  }

  private item(it: unknown, parent: Node): SourcedNode {
    if (it === null || it === undefined) return { kind: 'scalar', value: null, loc: this.loc(parent), empty: true };
    return this.node(it);
  }

  private map(pairs: readonly Pair[], owner: Node): SourcedMap {
    const entries = new Map<string, SourcedEntry>();
    const merges: SourcedMap[] = [];
    for (const pair of pairs) {
      const keyNode = pair.key;
      if (isScalar(keyNode) && typeof keyNode.value === 'symbol') {
        // `<<` merge key (resolved as a symbol only when `merge: true`).
        merges.push(...this.mergeSources(pair.value, keyNode));
        continue;
      }
      const key = this.key(keyNode, owner);
      const keyLoc = isScalar(keyNode) || isAlias(keyNode) ? this.loc(keyNode as Node) : this.loc(owner);
      const node: SourcedNode =
        pair.value === null || pair.value === undefined
          ? { kind: 'scalar', value: null, loc: keyLoc, empty: true }
          : this.node(pair.value);
      entries.set(key, { key, keyLoc, node });
    }
    // YAML merge semantics: explicit keys win, and earlier merge sources win over later ones.
    for (const source of merges) {
      for (const [k, e] of source.entries) if (!entries.has(k)) entries.set(k, e);
    }
    return { kind: 'map', entries, loc: this.loc(owner) };
  }

  private mergeSources(value: unknown, keyNode: Node): SourcedMap[] {
    const one = (v: unknown): SourcedMap => {
      const converted = v === null || v === undefined ? undefined : this.node(v);
      if (converted?.kind !== 'map') {
        throw this.fail(keyNode, 'A merge key `<<` must refer to a map or a list of maps.', 'Write `<<: *anchor` where `&anchor` names a map.');
      }
      return converted;
    };
    return isSeq(value) ? value.items.map(one) : [one(value)];
  }

  private key(keyNode: unknown, owner: Node): string {
    const resolved = isAlias(keyNode) ? keyNode.resolve(this.doc) : keyNode;
    if (isScalar(resolved) && resolved.value !== null && resolved.value !== undefined && typeof resolved.value !== 'object') {
      return String(resolved.value);
    }
    throw this.fail(
      (isScalar(keyNode) ? keyNode : owner) as Node,
      'A map key must be a plain string or number.',
      'Use simple keys such as `devices:`; complex and empty keys are not supported.',
    );
  }

  private loc(node: Node): SourceLocation {
    return this.at(node.range?.[0] ?? 0);
  }

  private fail(node: Node, message: string, hint: string): OmniError {
    return new OmniError(this.errorCode, message, { location: this.loc(node), hint });
  }
}

/**
 * Reads a configuration file, turning any I/O failure into `OMNI_CONFIG_NOT_FOUND`. `referencedFrom`
 * is the `base_config` value that named the file, so the error points at the line to fix.
 */
export async function readConfigText(path: string, readFile: ReadFile, referencedFrom?: SourceLocation): Promise<string> {
  try {
    return await readFile(path);
  } catch (cause) {
    const reason = (cause as { code?: unknown }).code === 'ENOENT' ? 'no such file' : cause instanceof Error ? cause.message : String(cause);
    throw new OmniError('OMNI_CONFIG_NOT_FOUND', `Cannot read the pipeline file ${path}: ${reason}.`, {
      cause,
      ...(referencedFrom ? { location: referencedFrom } : {}),
      hint: referencedFrom
        ? 'A base_config path is relative to the directory of the file that names it; fix the path or create the file.'
        : 'Check the path (relative paths are resolved against the current directory).',
    });
  }
}
