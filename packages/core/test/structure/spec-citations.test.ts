/**
 * No comment cites the design spec by section ("spec b.22 step 7", "(f) item 6"): a reader of the
 * repository cannot open it. Comments say what the rule is, or name the upstream function or file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGES_DIR } from './source-files.js';

const CITATION = /\bspec\s*(?:\n\s*\*\s*)?\(?[a-h]\)?[.\s]\s*\d+|\b[a-h]\.\d+\s+steps?\s+\d|\([a-h]\)\s*item\s+\d+/g;

/** `file:line  text` of every citation in the text of `file`. */
export function specCitations(file: string, text = readFileSync(file, 'utf8')): string[] {
  return [...text.matchAll(CITATION)].map((m) => {
    const line = text.slice(0, m.index).split('\n').length;
    return `${relative(PACKAGES_DIR, file)}:${line}  ${m[0].replace(/\s+/g, ' ')}`;
  });
}

/** Sources and tests of every package (TypeScript, JavaScript, Python, C). */
function sourceFiles(): string[] {
  return readdirSync(PACKAGES_DIR, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mts|mjs|js|py|c)$/.test(e.name) && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => !/\/(node_modules|dist|fixtures)\//.test(f) && !f.endsWith('spec-citations.test.ts'));
}

describe('spec citations', () => {
  it('the check finds a citation, also one broken over two comment lines (so the rule below can fail)', () => {
    const text =
      '/**\n * Builds it (upstream `f`, spec\n * b.22).\n */\n// see spec c.3, and b.23 step 4, (f) item 6\n';
    expect(specCitations(join(PACKAGES_DIR, 'x.ts'), text)).toEqual([
      'x.ts:2  spec * b.22',
      'x.ts:5  spec c.3',
      'x.ts:5  b.23 step 4',
      'x.ts:5  (f) item 6',
    ]);
  });

  it('no comment in any package cites the design spec by section', () => {
    expect(sourceFiles().flatMap((f) => specCitations(f))).toEqual([]);
  });
});
