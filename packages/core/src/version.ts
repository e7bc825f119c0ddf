import { readFileSync } from 'node:fs';

/** The installed `@omnistage/core` version, read from its package.json (dist/ and src/ sit beside it). */
export const CORE_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

function parse(v: string): [number, number, number] | null {
  const m = /^(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(v.trim());
  if (!m) return null;
  const n = (s: string | undefined): number => (s === undefined || s === 'x' || s === '*' ? 0 : Number(s));
  return [n(m[1]), n(m[2]), n(m[3])];
}

function cmp(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/**
 * A small semver range check for plugin `coreVersion` (no prerelease tags): `*`, `x.y.z`, `^x.y.z`,
 * `~x.y.z`, `>=x.y.z`, `<x.y.z` and space-separated conjunctions, `||` alternatives. Returns null
 * when the range cannot be parsed, so the caller can say so instead of guessing.
 */
export function satisfiesRange(version: string, range: string): boolean | null {
  const v = parse(version);
  if (!v) return null;
  const alternatives = range.split('||').map((s) => s.trim());
  let anyParsed = false;
  for (const alt of alternatives) {
    const parts = alt === '' ? ['*'] : alt.split(/\s+/);
    let ok = true;
    for (const part of parts) {
      if (part === '*' || part === 'x') continue;
      const m = /^(\^|~|>=|<=|>|<|=)?(.+)$/.exec(part);
      const base = m ? parse(m[2] ?? '') : null;
      if (!m || !base) return null;
      const op = m[1] ?? '=';
      const c = cmp(v, base);
      const pass =
        op === '^'
          ? c >= 0 &&
            (base[0] > 0
              ? v[0] === base[0]
              : base[1] > 0
                ? v[0] === 0 && v[1] === base[1]
                : v[0] === 0 && v[1] === 0 && v[2] === base[2])
          : op === '~'
            ? c >= 0 && v[0] === base[0] && v[1] === base[1]
            : op === '>='
              ? c >= 0
              : op === '<='
                ? c <= 0
                : op === '>'
                  ? c > 0
                  : op === '<'
                    ? c < 0
                    : c === 0;
      if (!pass) ok = false;
    }
    anyParsed = true;
    if (ok) return true;
  }
  return anyParsed ? false : null;
}
