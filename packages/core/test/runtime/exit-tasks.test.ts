import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGES_DIR, tsFilesUnder } from '../structure/source-files.js';
import { FIXTURES, cleanupTempDirs, requireBuilt, tempDir } from './helpers.js';

beforeAll(() => requireBuilt('process/exit-tasks.ts'));
afterEach(cleanupTempDirs);

describe('atProcessExit: the one process-exit registry', () => {
  for (const how of ['exit', 'drain'] as const) {
    it(`runs every task in order on ${how === 'exit' ? 'process.exit' : 'a drained event loop'}, past a failing one, and skips withdrawn ones`, async () => {
      const dir = await tempDir();
      const child = spawnSync(process.execPath, [join(FIXTURES, 'exit-tasks-child.mjs'), dir, how], {
        encoding: 'utf8',
      });
      expect(child.stderr).toBe('');
      expect(child.status).toBe(how === 'exit' ? 3 : 0);
      expect(readFileSync(join(dir, 'first'), 'utf8')).toBe(String(child.pid));
      expect(readFileSync(join(dir, 'last'), 'utf8')).toBe(String(child.pid));
      expect(existsSync(join(dir, 'withdrawn'))).toBe(false);
    });
  }

  it("is the only 'exit' listener on process in any package's source", () => {
    const listeners = /\bprocess\s*\.\s*(on|once|addListener|prependListener)\(\s*['"]exit['"]/;
    const offenders = readdirSync(PACKAGES_DIR)
      .map((pkg) => join(PACKAGES_DIR, pkg, 'src'))
      .filter((src) => existsSync(src))
      .flatMap((src) => tsFilesUnder(src))
      .filter((file) => listeners.test(readFileSync(file, 'utf8')))
      .map((file) => file.slice(PACKAGES_DIR.length + 1));
    expect(offenders).toEqual(['core/src/process/exit-tasks.ts']);
  });
});
