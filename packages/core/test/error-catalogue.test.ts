/**
 * The one catalogue: docs/errors.md is generated from it (`npm run docs:errors`) and must match,
 * and every `OMNI_*` code quoted anywhere in the packages' sources must be in it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderErrorDocs } from '../src/error-docs.js';
import { diagnostic } from '../src/diagnostics.js';
import { ERROR_CATALOGUE, WARNING_CATALOGUE, type ErrorCode } from '../src/errors.js';

const REPO = join(import.meta.dirname, '..', '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js|mjs|py)$/.test(e.name) ? [path] : [];
  });
}

describe('the error catalogue', () => {
  it('docs/errors.md is what `npm run docs:errors` generates from it', () => {
    const doc = readFileSync(join(REPO, 'docs', 'errors.md'), 'utf8');
    expect(doc, 'docs/errors.md is out of date: run `npm run docs:errors`').toBe(renderErrorDocs());
  });

  it('lists every code quoted in packages/*/src, and nothing it does not define is quoted', () => {
    const known = new Set<string>([...Object.keys(ERROR_CATALOGUE), ...Object.keys(WARNING_CATALOGUE)]);
    const unknown: string[] = [];
    for (const pkg of readdirSync(join(REPO, 'packages'))) {
      const src = join(REPO, 'packages', pkg, 'src');
      let files: string[];
      try {
        files = sourceFiles(src);
      } catch {
        continue;
      }
      for (const file of files) {
        for (const m of readFileSync(file, 'utf8').matchAll(/['"`](OMNI_[A-Z0-9_]+)(?![A-Z0-9_*]|\$\{)/g)) {
          if (!known.has(m[1]!)) unknown.push(`${relative(REPO, file)}: ${m[1]}`);
        }
      }
    }
    expect(unknown).toEqual([]);
  });

  it('gives every code a when-sentence and a how-to-fix sentence, and warnings their own prefix', () => {
    for (const [code, e] of Object.entries(ERROR_CATALOGUE)) {
      expect(code).toMatch(/^OMNI_(?!WARN_)[A-Z0-9_]+$/);
      expect([e.summary.length > 10, /[.!]$/.test(e.fix), [1, 2].includes(e.exitCode)]).toEqual([true, true, true]);
    }
    for (const [code, w] of Object.entries(WARNING_CATALOGUE)) {
      expect(code).toMatch(/^OMNI_WARN_[A-Z0-9_]+$/);
      expect([w.summary.length > 10, /[.!]$/.test(w.fix)]).toEqual([true, true]);
    }
  });

  it('gives every code the HTTP status `serve` answers with: 4xx only for what the client can change', () => {
    const clientSide = ['OMNI_USAGE', 'OMNI_HTTP_INVALID_REQUEST', 'OMNI_HTTP_UNAUTHORIZED', 'OMNI_HTTP_OVERLOADED'];
    const wrong = Object.entries(ERROR_CATALOGUE)
      .filter(([code, e]) => {
        const status: number = e.httpStatus;
        const clientFault = status >= 400 && status < 500;
        return !Number.isInteger(status) || status < 400 || status > 599 || clientFault !== clientSide.includes(code);
      })
      .map(([code, e]) => `${code}: ${e.httpStatus}`);
    expect(wrong).toEqual([]);
    expect([
      ERROR_CATALOGUE.OMNI_PLUGIN_FAILED.httpStatus,
      ERROR_CATALOGUE.OMNI_WORKER_EXITED.httpStatus,
      ERROR_CATALOGUE.OMNI_STAGE_UNAVAILABLE.httpStatus,
      ERROR_CATALOGUE.OMNI_REQUEST_TIMEOUT.httpStatus,
    ]).toEqual([500, 502, 503, 504]);
  });

  it('rejects codes it does not define at compile time (checked by `npm run typecheck`)', () => {
    // @ts-expect-error an error code that is not in the catalogue
    const bogus: ErrorCode = 'OMNI_NO_SUCH_CODE';
    // @ts-expect-error a warning code that is not in the catalogue
    const warning = diagnostic('OMNI_WARN_NO_SUCH_WARNING', 'message');
    expect(bogus in ERROR_CATALOGUE).toBe(false);
    expect(warning.code).toBe('OMNI_WARN_NO_SUCH_WARNING');
  });
});
