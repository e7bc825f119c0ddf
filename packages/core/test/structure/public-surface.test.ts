/**
 * The root of `@omnistage/core` is what an application or a plugin needs, kept small (at most 50
 * runtime names; planning internals, runtime building blocks and test helpers live in subpaths),
 * and every name it exports says what it is (a doc comment at its declaration).
 */
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as root from '../../src/index.js';
import { PACKAGES_DIR } from './source-files.js';

// The worker SDK's entry point (`worker/index.ts`) is being split (issue 8, item 5); it joins this list then.
const ENTRY_POINTS = ['index.ts', 'planning/index.ts', 'runtime/index.ts', 'testing/index.ts', 'cluster/index.ts'];

const entryFile = (entry: string): string => join(PACKAGES_DIR, 'core', 'src', entry);
let program: ts.Program | undefined;

/** Exported names of an entry point whose declaration carries no doc comment. */
function undocumented(entry: string): string[] {
  const file = entryFile(entry);
  // One program for every entry point: building it is the slow part.
  program ??= ts.createProgram(ENTRY_POINTS.map(entryFile), {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
  return checker
    .getExportsOfModule(moduleSymbol)
    .filter((s) => {
      const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
      const documented = (target.declarations ?? []).some((d) => {
        // A `const` is documented on its statement, not its declarator.
        const node = ts.isVariableDeclaration(d) ? d.parent.parent : d;
        return ts.getJSDocCommentsAndTags(node).length > 0;
      });
      return !documented;
    })
    .map((s) => s.name)
    .sort();
}

describe('the public surface of @omnistage/core', () => {
  it('the root exports at most 50 runtime names', () => {
    const names = Object.keys(root);
    expect(names).toContain('Omnistage');
    expect(names.length).toBeLessThanOrEqual(50);
  });

  it('keeps planning internals and runtime building blocks out of the root', () => {
    for (const internal of [
      'splitDevicesForReplicas',
      'computeReplicaLayout',
      'acquireDeviceLocks',
      'launchProcess',
      'ControlServer',
      'writePayload',
      'createStageConfig',
    ]) {
      expect(Object.keys(root), internal).not.toContain(internal);
    }
  });

  it.each(ENTRY_POINTS)('every name %s exports carries a doc comment', { timeout: 60_000 }, (entry) => {
    expect(undocumented(entry)).toEqual([]);
  });
});
