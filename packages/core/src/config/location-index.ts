import type { SourceLocation } from '../errors.js';

/**
 * Remembers where each value of a normalised config came from. Keys are dotted paths relative to
 * the owner (a stage: `engine_args.worker_type`, `runtime.devices`; the pipeline: `connectors.x`).
 * A lookup for a path that was not recorded walks up to the nearest recorded parent, so an error
 * about a missing key points at the map that should contain it.
 */
export class LocationIndex {
  readonly #entries = new Map<string, SourceLocation>();
  /** Where the key of a map entry is written, for errors about the key itself (an unknown key). */
  readonly #keys = new Map<string, SourceLocation>();
  readonly #fallback: SourceLocation;

  constructor(fallback: SourceLocation) {
    this.#fallback = fallback;
  }

  set(path: string | readonly (string | number)[], loc: SourceLocation): void {
    this.#entries.set(LocationIndex.key(path), loc);
  }

  /** The recorded location of `path`, or of its nearest recorded ancestor, or the owner's own. */
  at(path: string | readonly (string | number)[] = ''): SourceLocation {
    let key = LocationIndex.key(path);
    for (;;) {
      const hit = this.#entries.get(key);
      if (hit) return hit;
      if (key === '') return this.#fallback;
      const dot = key.lastIndexOf('.');
      key = dot < 0 ? '' : key.slice(0, dot);
    }
  }

  setKey(path: string | readonly (string | number)[], loc: SourceLocation): void {
    this.#keys.set(LocationIndex.key(path), loc);
  }

  /** Where the key of `path` is written; {@link at} when it was not recorded. */
  keyAt(path: string | readonly (string | number)[]): SourceLocation {
    return this.#keys.get(LocationIndex.key(path)) ?? this.at(path);
  }

  /** True when exactly this path was recorded (no parent fallback). */
  has(path: string | readonly (string | number)[]): boolean {
    return this.#entries.has(LocationIndex.key(path));
  }

  /** Copies entries under `fromPrefix` of `other` into this index under `toPrefix`. */
  copyFrom(other: LocationIndex, fromPrefix = '', toPrefix = ''): void {
    for (const [from, to] of [
      [other.#entries, this.#entries],
      [other.#keys, this.#keys],
    ] as const) {
      for (const [k, v] of from) {
        if (fromPrefix === '' || k === fromPrefix || k.startsWith(`${fromPrefix}.`)) {
          const rest = fromPrefix === '' ? k : k.slice(fromPrefix.length).replace(/^\./, '');
          to.set([toPrefix, rest].filter((s) => s !== '').join('.'), v);
        }
      }
    }
  }

  entries(): IterableIterator<[string, SourceLocation]> {
    return this.#entries.entries();
  }

  static key(path: string | readonly (string | number)[]): string {
    return typeof path === 'string' ? path : path.map(String).join('.');
  }

  /** Not serialised: plans and configs are printed as JSON without their source maps. */
  toJSON(): undefined {
    return undefined;
  }
}
