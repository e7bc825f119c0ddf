/**
 * Every runtime warning carries a code: each `logger.warn(...)` in packages/∗/src passes a first
 * argument with `code` — an `OMNI_WARN_*` of the catalogue (or an error's own code) — so a log
 * reader or alert can match on it, and docs/errors.md says what it means and how to fix it.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { relative } from 'node:path';
import { pino } from 'pino';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, WARNING_CATALOGUE } from '../../src/errors.js';
import { EventBus } from '../../src/events/event-bus.js';
import { PACKAGES_DIR, packageSources, parse } from './source-files.js';

/** Receivers that are pino loggers: `logger`, `this.#logger`, `rt.logger`, `request.log`. */
const LOGGER = /(^|\.)#?(logger|log)$/;

/** Why a warning call's `code` is missing or not a catalogue code; null when it is fine. */
function problemOf(call: ts.CallExpression, source: ts.SourceFile): string | null {
  const first = call.arguments[0];
  if (!first || !ts.isObjectLiteralExpression(first)) return 'no fields object with a code first';
  const code = first.properties.find(
    (p): p is ts.PropertyAssignment => ts.isPropertyAssignment(p) && p.name.getText(source) === 'code',
  );
  if (!code) return 'no `code` field';
  const value = code.initializer;
  if (ts.isStringLiteral(value))
    return value.text in WARNING_CATALOGUE || value.text in ERROR_CATALOGUE ? null : `${value.text} is not catalogued`;
  // An error's own code (`code: e.code`) is catalogued by construction.
  return ts.isPropertyAccessExpression(value) && value.name.text === 'code' ? null : 'code is not a literal';
}

function uncodedWarnings(): string[] {
  const found: string[] = [];
  for (const file of packageSources()) {
    if (!readFileSync(file, 'utf8').includes('.warn(')) continue;
    const source = parse(file);
    const visit = (node: ts.Node): void => {
      if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        node.expression.name.text === 'warn' &&
        LOGGER.test(node.expression.expression.getText(source))
      ) {
        const problem = problemOf(node, source);
        const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
        if (problem !== null) found.push(`${relative(PACKAGES_DIR, file)}:${line}: ${problem}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

describe('runtime warnings', () => {
  it('every logger.warn in packages/*/src carries a catalogue code', () => {
    expect(uncodedWarnings()).toEqual([]);
  });

  it('the check sees warnings (so it can fail)', () => {
    const file = `${PACKAGES_DIR}/core/src/orchestrate/liveness.ts`;
    const source = parse(file);
    let calls = 0;
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && node.expression.getText(source).endsWith('logger.warn')) calls++;
      ts.forEachChild(node, visit);
    };
    visit(source);
    expect(calls).toBeGreaterThan(0);
    const bare = ts.createSourceFile('x.ts', "logger.warn('no code');", ts.ScriptTarget.Latest, true);
    const call = (bare.statements[0] as ts.ExpressionStatement).expression as ts.CallExpression;
    expect(problemOf(call, bare)).toBe('no fields object with a code first');
  });

  it('a warning a run logs carries its code in the record (a throwing event listener)', () => {
    const records: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        records.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const bus = new EventBus(pino({ level: 'warn' }, sink));
    bus.onAny(() => {
      throw new Error('listener bug');
    });
    bus.emit({ type: 'pipeline:stopped' });
    expect(records.map((r) => [r['level'], r['code'], r['event']])).toEqual([
      [40, 'OMNI_WARN_LISTENER_FAILED', 'pipeline:stopped'],
    ]);
  });
});
