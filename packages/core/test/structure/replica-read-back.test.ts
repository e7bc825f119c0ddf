/**
 * No stage config is read back from a stage's first replica (`replicas[0]`, `replicas.at(0)`,
 * `const [first] = …replicas`) in any package's src: what a stage's replicas share is on its
 * `StagePlan` (config, engine, template replica), and a stage planned with `num_replicas: 0` has
 * no replica 0 at all.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { PACKAGES_DIR, parse, tsFilesUnder } from './source-files.js';

const PACKAGES = readdirSync(PACKAGES_DIR).filter((p) => existsSync(join(PACKAGES_DIR, p, 'src')));
const FIXTURE = join(PACKAGES_DIR, 'core', 'test', 'structure', 'fixtures', 'read-back', 'offenders.ts');

/** True for `replicas` and `….replicas`. */
function isReplicas(node: ts.Expression): boolean {
  const e = ts.isNonNullExpression(node) ? node.expression : node;
  return (
    (ts.isIdentifier(e) && e.text === 'replicas') || (ts.isPropertyAccessExpression(e) && e.name.text === 'replicas')
  );
}

const isZero = (node: ts.Node | undefined): boolean =>
  node !== undefined && ts.isNumericLiteral(node) && node.text === '0';

/** Whether `node` reads the first replica of a replica list. */
function readsFirstReplica(node: ts.Node): boolean {
  if (ts.isElementAccessExpression(node)) return isReplicas(node.expression) && isZero(node.argumentExpression);
  if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
    const callee = node.expression;
    return callee.name.text === 'at' && isReplicas(callee.expression) && isZero(node.arguments[0]);
  }
  return (
    ts.isVariableDeclaration(node) &&
    ts.isArrayBindingPattern(node.name) &&
    node.initializer !== undefined &&
    isReplicas(node.initializer)
  );
}

/** `file:line:col code` of every first-replica read in `file`. */
export function replicaReadBacks(file: string): string[] {
  const source = parse(file);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (readsFirstReplica(node)) {
      const { line, character } = source.getLineAndCharacterOfPosition(node.getStart(source));
      out.push(`${relative(PACKAGES_DIR, file)}:${line + 1}:${character + 1} ${node.getText(source)}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

// Parsing a package's sources takes seconds on a loaded 2-core machine: CPU, not a wait.
describe('no replicas[0] read-back in packages/*/src', { timeout: 60_000 }, () => {
  it('the check finds every form of it, and not a replica by index (so the rule below can fail)', () => {
    expect(replicaReadBacks(FIXTURE).map((w) => w.replace(/^.*offenders\.ts:/, ''))).toEqual([
      '5:18 stage.replicas[0]',
      '6:18 stage.replicas.at(0)',
      '7:18 replicas[0]',
      '8:7 [first] = stage.replicas',
    ]);
  });

  it.each(PACKAGES)('none in packages/%s/src', (pkg) => {
    expect(tsFilesUnder(join(PACKAGES_DIR, pkg, 'src')).flatMap(replicaReadBacks)).toEqual([]);
  });
});
