/**
 * The whole tree is formatted by prettier (the root's .prettierrc.json and .prettierignore): a
 * file that is not fails here by name, as `npm run lint` (format:check) does.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from '../runtime/helpers.js';
import { PACKAGES_DIR } from './source-files.js';

const ROOT = dirname(PACKAGES_DIR);
const PRETTIER = join(dirname(createRequire(import.meta.url).resolve('prettier/package.json')), 'bin', 'prettier.cjs');

/** The files under `dir` that prettier would change, relative to `dir` (what `--list-different` prints). */
function unformatted(dir: string, ...args: string[]): string[] {
  const r = spawnSync(process.execPath, [PRETTIER, '--list-different', ...args, '.'], { cwd: dir, encoding: 'utf8' });
  // 0: all formatted; 1: some are not (listed); anything else is prettier failing.
  expect([0, 1], r.stderr).toContain(r.status);
  return r.stdout.split('\n').filter((l) => l !== '');
}

describe('formatting', () => {
  afterAll(cleanupTempDirs);

  it('the check names a file prettier would change (so the rule below can fail)', async () => {
    const dir = await tempDir();
    writeFileSync(join(dir, 'bad.ts'), 'const  a={b:1}\n');
    writeFileSync(join(dir, 'good.ts'), 'const a = { b: 1 };\n');
    expect(unformatted(dir, '--config', join(ROOT, '.prettierrc.json'))).toEqual(['bad.ts']);
  });

  it('every file of the tree is formatted', { timeout: 180_000 }, () => {
    expect(unformatted(ROOT), 'run `npx prettier --write` on these').toEqual([]);
  });
});
