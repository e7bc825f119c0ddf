/**
 * The README and docs are read by users who have only this repository: they must not point at
 * design notes outside it (`../shared/...`, "brief §9", a section of the spec), and docs/plugins.md must
 * document what plugin authors otherwise find by reading the source.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers.js';

const docs = [
  'README.md',
  ...readdirSync(join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  ...readdirSync(join(REPO_ROOT, 'examples'))
    .map((d) => `examples/${d}/README.md`)
    .filter((f) => {
      try {
        readFileSync(join(REPO_ROOT, f));
        return true;
      } catch {
        return false;
      }
    }),
];

describe('docs are self-contained', () => {
  it.each(docs)('%s points only inside the repository', (file) => {
    const text = readFileSync(join(REPO_ROOT, file), 'utf8');
    expect(text).not.toMatch(/\.\.\/shared\/|`shared\/(design|spec|fixtures)|brief(\.md)? ?§|\bspec b\.\d+/i);
  });

  it('docs/plugins.md documents diagnostic(), req.input and the output shapes', () => {
    const text = readFileSync(join(REPO_ROOT, 'docs', 'plugins.md'), 'utf8');
    for (const needle of [
      'diagnostic(',
      'OMNI_WARN_PLUGIN',
      'req.input',
      "kind: 'image'",
      "kind: 'audio'",
      '{ text }',
      '@omnistage/core',
    ])
      expect(text).toContain(needle);
  });
});
