/**
 * No import cycle in any package's src (type-only imports and re-exports included): a cycle makes
 * load order matter and is where "everything reaches everything" starts.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { PACKAGES_DIR, parse, tsFilesUnder } from './source-files.js';

/** The files a source file imports or re-exports from, among `files` (relative specifiers only). */
function importsOf(file: string, files: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const stmt of parse(file).statements) {
    const spec =
      (ts.isImportDeclaration(stmt) || ts.isExportDeclaration(stmt)) &&
      stmt.moduleSpecifier &&
      ts.isStringLiteral(stmt.moduleSpecifier)
        ? stmt.moduleSpecifier.text
        : null;
    if (spec === null || !spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
    if (files.has(target)) out.push(target);
  }
  return out;
}

/** Strongly connected components of more than one file (or a file importing itself): the cycles. */
export function importCycles(files: readonly string[]): string[][] {
  const set = new Set(files);
  const edges = new Map(files.map((f) => [f, importsOf(f, set)] as const));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (edges.get(v) ?? []).includes(v)) cycles.push(scc.sort());
  };
  for (const f of files) if (!index.has(f)) connect(f);
  return cycles;
}

const packages = readdirSync(PACKAGES_DIR).filter((p) => existsSync(join(PACKAGES_DIR, p, 'src')));

describe('import cycles', () => {
  it('the detector finds a cycle when there is one', () => {
    const fixtures = join(PACKAGES_DIR, 'core', 'test', 'structure', 'fixtures', 'cycle');
    expect(importCycles(tsFilesUnder(fixtures)).map((c) => c.map((f) => relative(fixtures, f)))).toEqual([
      ['a.ts', 'b.ts'],
    ]);
  });

  it.each(packages)('none in packages/%s/src', (pkg) => {
    const src = join(PACKAGES_DIR, pkg, 'src');
    const cycles = importCycles(tsFilesUnder(src)).map((c) => c.map((f) => relative(src, f)).join(' → '));
    expect(cycles).toEqual([]);
  });
});
