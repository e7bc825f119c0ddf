import type { SourceLocation } from '../errors.js';
import type { LocationIndex } from './location-index.js';

/**
 * A parsed configuration value that remembers where each part came from. The YAML module builds it
 * once per file; base_config merges, platform overlays, the deploy → legacy conversion and
 * --stage-overrides all operate on these trees, so every value of the normalised config still
 * knows its file:line:col, whichever file it came from.
 */
export type SourcedNode = SourcedScalar | SourcedSeq | SourcedMap;

interface SourcedBase {
  /** Start of the value node. */
  loc: SourceLocation;
  /** Made up by the loader (defaults, built-in topology): no source of its own, never recorded. */
  synthetic?: boolean;
}

export interface SourcedScalar extends SourcedBase {
  kind: 'scalar';
  value: string | number | boolean | null;
  /** `key:` with nothing after it: the value has no text, so errors point at the key. */
  empty?: boolean;
}

export interface SourcedSeq extends SourcedBase {
  kind: 'seq';
  items: SourcedNode[];
}

export interface SourcedMap extends SourcedBase {
  kind: 'map';
  entries: Map<string, SourcedEntry>;
}

export interface SourcedEntry {
  key: string;
  /** Start of the key node. */
  keyLoc: SourceLocation;
  node: SourcedNode;
}

export type SourcedPath = readonly (string | number)[];

/** The plain JS value of a tree (maps become plain objects, with no prototype keys involved). */
export function toJS(node: SourcedNode): unknown {
  switch (node.kind) {
    case 'scalar':
      return node.value;
    case 'seq':
      return node.items.map(toJS);
    case 'map':
      return Object.fromEntries([...node.entries].map(([k, e]) => [k, toJS(e.node)]));
  }
}

/** A synthetic tree from a plain JS value; every node gets `loc`. */
export function fromJS(value: unknown, loc: SourceLocation): SourcedNode {
  if (Array.isArray(value)) return { kind: 'seq', items: value.map((v) => fromJS(v, loc)), loc, synthetic: true };
  if (value !== null && typeof value === 'object') {
    const entries = new Map<string, SourcedEntry>();
    for (const [k, v] of Object.entries(value)) entries.set(k, { key: k, keyLoc: loc, node: fromJS(v, loc) });
    return { kind: 'map', entries, loc, synthetic: true };
  }
  const scalar = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? value : null;
  return { kind: 'scalar', value: scalar, loc, synthetic: true };
}

export function syntheticMap(loc: SourceLocation): SourcedMap {
  return { kind: 'map', entries: new Map(), loc, synthetic: true };
}

/** The node at `path`, or undefined when some segment is missing. */
export function nodeAt(root: SourcedNode, path: SourcedPath): SourcedNode | undefined {
  let cur: SourcedNode | undefined = root;
  for (const seg of path) {
    if (cur === undefined) return undefined;
    if (cur.kind === 'map') cur = cur.entries.get(String(seg))?.node;
    else if (cur.kind === 'seq' && typeof seg === 'number') cur = cur.items[seg];
    else return undefined;
  }
  return cur;
}

/** The map entry whose key is the last segment of `path`, when the path ends in a map key. */
export function entryAt(root: SourcedNode, path: SourcedPath): SourcedEntry | undefined {
  if (path.length === 0) return undefined;
  const parent = nodeAt(root, path.slice(0, -1));
  return parent?.kind === 'map' ? parent.entries.get(String(path[path.length - 1])) : undefined;
}

/**
 * Where a map entry "is" for messages: its value when the value sits on the key's line (scalars,
 * flow collections), else the key (a block map or list starts on a later line, and a key with an
 * empty value has nothing else to point at).
 */
export function entryLocation(entry: SourcedEntry): SourceLocation {
  const { node, keyLoc } = entry;
  if (node.synthetic) return keyLoc;
  if (node.kind === 'scalar' && node.empty) return keyLoc;
  if (node.loc.file === keyLoc.file && node.loc.line === keyLoc.line) return node.loc;
  return node.kind === 'scalar' ? node.loc : keyLoc;
}

/**
 * The location of `path` inside `root`: the value (see {@link entryLocation}) or, with
 * `want: 'key'`, the key itself. A missing path walks up to the nearest existing ancestor, so a
 * missing required key points at the map that should hold it.
 */
export function locate(root: SourcedNode, path: SourcedPath, want: 'value' | 'key' = 'value'): SourceLocation {
  for (let n = path.length; n > 0; n--) {
    const sub = path.slice(0, n);
    const entry = entryAt(root, sub);
    if (entry) return want === 'key' && n === path.length ? entry.keyLoc : entryLocation(entry);
    const node = nodeAt(root, sub);
    if (node) return node.loc;
  }
  return root.loc;
}

/**
 * Records the location of every non-synthetic value under `node` into `index`, with dotted paths
 * below `prefix` (`engine_args.parallel_config.ulysses_degree`, `default_sampling_params.stop_token_ids.0`).
 */
export function recordLocations(node: SourcedNode, prefix: string, index: LocationIndex): void {
  const join = (k: string | number): string => (prefix === '' ? String(k) : `${prefix}.${k}`);
  if (node.kind === 'map') {
    for (const entry of node.entries.values()) {
      const path = join(entry.key);
      if (!entry.node.synthetic) {
        index.set(path, entryLocation(entry));
        index.setKey(path, entry.keyLoc);
      }
      recordLocations(entry.node, path, index);
    }
  } else if (node.kind === 'seq') {
    node.items.forEach((item, i) => {
      const path = join(i);
      if (!item.synthetic) index.set(path, item.loc);
      recordLocations(item, path, index);
    });
  }
}

/**
 * Recursive merge: maps merge key by key (overlay wins, base order kept, new keys appended); any
 * other overlay value replaces the base one. Neither input is modified.
 */
export function deepMerge(base: SourcedNode, overlay: SourcedNode): SourcedNode {
  if (base.kind !== 'map' || overlay.kind !== 'map') return overlay;
  const entries = new Map(base.entries);
  for (const [k, e] of overlay.entries) {
    const prev = entries.get(k);
    entries.set(k, prev ? { ...e, node: deepMerge(prev.node, e.node) } : e);
  }
  return { ...overlay, entries };
}

/** A copy of `map` with the given entries set (replacing existing keys in place). */
export function withEntries(map: SourcedMap, ...set: SourcedEntry[]): SourcedMap {
  const entries = new Map(map.entries);
  for (const e of set) entries.set(e.key, e);
  return { ...map, entries };
}

/** A copy of `map` without the given keys. */
export function withoutKeys(map: SourcedMap, keys: Iterable<string>): SourcedMap {
  const entries = new Map(map.entries);
  for (const k of keys) entries.delete(k);
  return { ...map, entries };
}

/** Renders a path the way users read it: `stage_args[0].runtime.devices`. */
export function formatPath(path: SourcedPath): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out === '' ? '(top level)' : out;
}
