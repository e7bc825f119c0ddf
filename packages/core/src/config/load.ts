/**
 * Reading and parsing configuration text. This is the only module that touches the `yaml` package
 * (its 3.x line drops the node APIs used here, so the blast radius of an upgrade stays in one file).
 * The output is a {@link SourcedNode} tree with a file:line:col on every key and value.
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import {
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Alias,
  type Document,
  type Node,
  type Pair,
} from 'yaml';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { OmniError, type ErrorCode, type SourceLocation } from '../errors.js';
import { CONFIG_LIMITS } from '../limits.js';
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
  const start: SourceLocation = { file, line: 1, col: 1 };
  if (text.length > CONFIG_LIMITS.maxTextBytes || Buffer.byteLength(text) > CONFIG_LIMITS.maxTextBytes) {
    throw new OmniError(
      errorCode,
      `${file} is larger than ${CONFIG_LIMITS.maxTextBytes / 2 ** 20} MiB; a pipeline file is a few KiB.`,
      {
        location: start,
        hint: 'Point omnistage at the pipeline file itself; keep large data (prompts, weights) in files the engines read.',
      },
    );
  }
  checkAliasCount(text, file, errorCode);
  const lineCounter = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: false, uniqueKeys: true });
  } catch (cause) {
    // The parser recurses per nesting level: thousands of `[` exhaust the stack.
    if (!(cause instanceof RangeError)) throw cause;
    throw new OmniError(errorCode, `${file} is nested too deeply to parse.`, {
      location: start,
      cause,
      hint: 'Flatten the nested lists and maps.',
    });
  }
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
  const root = doc.contents
    ? converter.node(doc.contents)
    : { kind: 'scalar' as const, value: null, loc: at(0), empty: true };
  return { file, root, warnings };
}

/**
 * Counts anchor and alias tokens before parsing: the parser's time grows with the square of their
 * number (12,000 took seconds), and a pipeline file has a handful. May count a `*` or `&` at the
 * start of a plain word, which only matters past the limit.
 */
function checkAliasCount(text: string, file: string, errorCode: ErrorCode): void {
  const token = /(?:^|[\s[{,])[&*][^\s,[\]{}]/g;
  let count = 0;
  for (let m = token.exec(text); m !== null; m = token.exec(text)) {
    if (++count <= CONFIG_LIMITS.maxAliases) continue;
    const offset = m.index + (m[0].length - 2);
    const before = text.slice(0, offset);
    const line = before.split('\n').length;
    throw new OmniError(errorCode, `${file} has more than ${CONFIG_LIMITS.maxAliases} YAML anchors and aliases.`, {
      location: { file, line, col: offset - before.lastIndexOf('\n') },
      hint: 'Write the values out or use fewer `&anchor` / `*alias` references; a pipeline file needs a handful.',
    });
  }
}

/** The text of the map key starting at `offset` (yaml reports duplicate keys by position only). */
function keyAt(text: string, offset: number): string {
  const m = /^(?:"([^"\n]*)"|'([^'\n]*)'|([^:#\n]*?))\s*:/.exec(text.slice(offset));
  return (m?.[1] ?? m?.[2] ?? m?.[3] ?? '').trim() || '?';
}

class Converter {
  #count = 0;
  #depth = 0;
  /** Alias → the anchored node it refers to, found in one pass (yaml's own lookup is linear per alias). */
  readonly #anchors = new Map<Alias, Node>();
  /** Anchored nodes being converted right now: an alias to one of them refers to itself. */
  readonly #expanding = new Set<Node>();

  constructor(
    doc: Document,
    private readonly at: (offset: number) => SourceLocation,
    private readonly errorCode: ErrorCode,
  ) {
    const latest = new Map<string, Node>();
    visit(doc, (_key, node) => {
      if (isAlias(node)) {
        const target = latest.get(node.source);
        if (target) this.#anchors.set(node, target);
      } else if (isNode(node) && node.anchor) latest.set(node.anchor, node);
    });
  }

  node(node: unknown, parentLoc?: SourceLocation): SourcedNode {
    const loc = isNode(node) && node.range ? this.loc(node) : (parentLoc ?? this.at(0));
    if (++this.#count > CONFIG_LIMITS.maxNodes) {
      throw new OmniError(
        this.errorCode,
        `The document expands to more than ${CONFIG_LIMITS.maxNodes} values through aliases.`,
        {
          location: loc,
          hint: 'Use fewer nested aliases (`*name`); a pipeline file never needs this many values.',
        },
      );
    }
    if (isAlias(node)) return this.alias(node, loc);
    if (isScalar(node)) return this.scalar(node, loc);
    if (isSeq(node) && node.items.every((it) => !isPairLike(it))) {
      return this.nested(loc, () => ({ kind: 'seq', items: node.items.map((it) => this.item(it, loc)), loc }));
    }
    if (isMap(node)) return this.nested(loc, () => this.map(node.items, node));
    const tag = isNode(node) && node.tag ? ` (\`${node.tag}\`)` : '';
    throw new OmniError(this.errorCode, `This YAML construct${tag} is not supported in a pipeline file.`, {
      location: loc,
      hint: 'Use plain maps, lists and scalars; `!!omap`, `!!pairs` and `!!set` are not pipeline values.',
    });
  }

  private alias(node: Alias, loc: SourceLocation): SourcedNode {
    const target = this.#anchors.get(node);
    if (!target)
      throw this.fail(node, `The alias \`*${node.source}\` has no anchor.`, 'Define `&name` before using `*name`.');
    if (this.#expanding.has(target)) {
      throw this.fail(
        node,
        `The alias \`*${node.source}\` refers to a value that contains it.`,
        'An alias must not point into its own anchor; copy the value instead.',
      );
    }
    this.#expanding.add(target);
    try {
      // The alias site is where the user wrote the value; nested values keep their anchor positions.
      return { ...this.node(target, loc), loc };
    } finally {
      this.#expanding.delete(target);
    }
  }

  private scalar(node: Node & { value: unknown }, loc: SourceLocation): SourcedNode {
    const raw = node.value;
    if (typeof raw === 'number' && !Number.isFinite(raw)) {
      throw new OmniError(this.errorCode, `\`${String(raw)}\` is not a usable number in a pipeline file.`, {
        location: loc,
        hint: 'Write a finite number (`.nan`, `.inf` and overflowing numbers such as 1e999 are not accepted).',
      });
    }
    const value =
      raw === null || raw === undefined
        ? null
        : typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'boolean'
          ? raw
          : typeof raw === 'bigint'
            ? Number(raw)
            : String(raw);
    if (typeof value === 'string' && value.length > CONFIG_LIMITS.maxStringChars) {
      throw new OmniError(
        this.errorCode,
        `A string of ${value.length} characters is longer than the ${CONFIG_LIMITS.maxStringChars} a pipeline value may have.`,
        {
          location: loc,
          hint: 'Keep long texts (prompts, templates) in files the engine reads and put their paths here.',
        },
      );
    }
    const empty = value === null && (node.range ? node.range[0] === node.range[1] : true);
    return { kind: 'scalar', value, loc, ...(empty ? { empty } : {}) };
  }

  private nested<T>(loc: SourceLocation, convert: () => T): T {
    if (++this.#depth > CONFIG_LIMITS.maxDepth) {
      throw new OmniError(
        this.errorCode,
        `Maps and lists are nested more than ${CONFIG_LIMITS.maxDepth} levels deep here.`,
        {
          location: loc,
          hint: 'Flatten the structure; pipeline settings are a few levels deep.',
        },
      );
    }
    try {
      return convert();
    } finally {
      this.#depth--;
    }
  }

  private item(it: unknown, parentLoc: SourceLocation): SourcedNode {
    if (it === null || it === undefined) return { kind: 'scalar', value: null, loc: parentLoc, empty: true };
    return this.node(it, parentLoc);
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
          : this.node(pair.value, keyLoc);
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
      const converted = v === null || v === undefined ? undefined : this.node(v, this.loc(keyNode));
      if (converted?.kind !== 'map') {
        throw this.fail(
          keyNode,
          'A merge key `<<` must refer to a map or a list of maps.',
          'Write `<<: *anchor` where `&anchor` names a map.',
        );
      }
      return converted;
    };
    return isSeq(value) ? value.items.map(one) : [one(value)];
  }

  private key(keyNode: unknown, owner: Node): string {
    const resolved = isAlias(keyNode) ? this.#anchors.get(keyNode) : keyNode;
    if (
      isScalar(resolved) &&
      resolved.value !== null &&
      resolved.value !== undefined &&
      typeof resolved.value !== 'object'
    ) {
      const key = String(resolved.value);
      if (key === '__proto__') {
        // JavaScript would take it for the object's prototype (or drop it): never a setting.
        throw this.fail(
          resolved,
          'A key named `__proto__` is not accepted.',
          'Remove it; no omnistage or engine setting has this name.',
        );
      }
      if (key.length > CONFIG_LIMITS.maxKeyChars) {
        throw this.fail(
          resolved,
          `A map key of ${key.length} characters is longer than the ${CONFIG_LIMITS.maxKeyChars} allowed.`,
          'Use the short key names the documentation lists.',
        );
      }
      return key;
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

/** `!!omap` and `!!pairs` are lists of pairs: not something a pipeline value can be. */
function isPairLike(item: unknown): boolean {
  return typeof item === 'object' && item !== null && 'key' in item && 'value' in item && !isNode(item);
}

/**
 * Reads a configuration file, turning any I/O failure into `OMNI_CONFIG_NOT_FOUND`. `referencedFrom`
 * is the `base_config` value that named the file, so the error points at the line to fix.
 */
export async function readConfigText(
  path: string,
  readFile: ReadFile,
  referencedFrom?: SourceLocation,
): Promise<string> {
  try {
    return await readFile(path);
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'it is a directory, not a file'
          : cause instanceof Error
            ? cause.message
            : String(cause);
    throw new OmniError('OMNI_CONFIG_NOT_FOUND', `Cannot read the pipeline file ${path}: ${reason}.`, {
      cause,
      ...(referencedFrom ? { location: referencedFrom } : {}),
      hint:
        code === 'EISDIR'
          ? `Name the pipeline YAML file inside it, e.g. ${path.replace(/\/$/, '')}/pipeline.yaml.`
          : referencedFrom
            ? 'A base_config path is relative to the directory of the file that names it; fix the path or create the file.'
            : 'Check the path (relative paths are resolved against the current directory).',
    });
  }
}
