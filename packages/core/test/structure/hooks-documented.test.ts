/**
 * The hook table lives in one place, docs/plugins.md ("Hooks"), and is checked against the one
 * definition, the `OmniHooks` interface: every hook has exactly one row, with its tapable kind
 * (`.for(type)` for a HookMap), its argument types in order and, for a bail hook, its result type.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { PACKAGES_DIR, parse } from './source-files.js';

interface HookRow {
  hook: string;
  kind: string;
  args: string[];
  /** The first type a tap may return to answer (bail hooks only). */
  answer: string | null;
}

/** The rows `OmniHooks` calls for, read from its declaration. */
export function hooksOfInterface(file: string): HookRow[] {
  const source = parse(file);
  const decl = source.statements.find(
    (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === 'OmniHooks',
  );
  if (decl === undefined) throw new Error(`no OmniHooks interface in ${file}`);
  return decl.members.filter(ts.isPropertySignature).map((m) => {
    let type = m.type as ts.TypeReferenceNode;
    const map = type.typeName.getText(source) === 'HookMap';
    if (map) type = type.typeArguments![0] as ts.TypeReferenceNode;
    const [argsTuple, result] = type.typeArguments ?? [];
    const args = (argsTuple as ts.TupleTypeNode).elements.map((e) => e.getText(source));
    const kind = type.typeName.getText(source);
    const answer = kind.endsWith('BailHook') && result ? result.getText(source).split('|')[0]!.trim() : null;
    return { hook: map ? `${m.name.getText(source)}.for(type)` : m.name.getText(source), kind, args, answer };
  });
}

/** The rows of the hook table in `markdown` (the table whose header starts `| hook | tapable kind |`). */
export function hookTable(markdown: string): { hook: string; kind: string; args: string[]; returns: string }[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.startsWith('| hook | tapable kind |'));
  if (start < 0) return [];
  const rows: { hook: string; kind: string; args: string[]; returns: string }[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const [hook, kind, args, returns] = line
      .split('|')
      .slice(1)
      .map((c) => c.trim());
    rows.push({
      hook: hook!.replace(/`/g, ''),
      kind: kind!.replace(/`/g, ''),
      args: [...args!.matchAll(/:\s*([A-Za-z]+)/g)].map((a) => a[1]!),
      returns: returns!,
    });
  }
  return rows;
}

const hooksFile = join(PACKAGES_DIR, 'core', 'src', 'hooks', 'hooks.ts');
const pluginsDoc = readFileSync(join(PACKAGES_DIR, '..', 'docs', 'plugins.md'), 'utf8');

describe('the hook table of docs/plugins.md', () => {
  it('is read whole, and so is the interface (so the rule below can fail)', () => {
    expect(hooksOfInterface(hooksFile).length).toBeGreaterThanOrEqual(8);
    expect(hookTable(pluginsDoc).length).toBeGreaterThanOrEqual(8);
    const bad = pluginsDoc.replace('| `spawn` | `AsyncSeriesBailHook` |', '| `spawn` | `AsyncSeriesHook` |');
    expect(hookTable(bad).find((r) => r.hook === 'spawn')?.kind).toBe('AsyncSeriesHook');
  });

  it('has one row per hook of OmniHooks, with its kind, arguments and answer', () => {
    const documented = hookTable(pluginsDoc);
    const expected = hooksOfInterface(hooksFile);
    expect(documented.map((r) => r.hook)).toEqual(expected.map((h) => h.hook));
    for (const h of expected) {
      const row = documented.find((r) => r.hook === h.hook)!;
      expect({ hook: h.hook, kind: row.kind, args: row.args }).toEqual({ hook: h.hook, kind: h.kind, args: h.args });
      if (h.answer !== null) expect(row.returns, h.hook).toContain(`\`${h.answer}\``);
    }
  });
});
