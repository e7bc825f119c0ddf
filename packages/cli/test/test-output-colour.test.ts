/**
 * `npm test` written to a file or a CI log carries no ANSI colour codes: the root script sets
 * NO_COLOR when its stdout is not a terminal (turbo forces colour in the tasks it runs, and
 * NO_COLOR wins over that in vitest).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers.js';

const script = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
).scripts['test']!;
/** The part of the script before it starts running anything. */
const prelude = script.slice(0, script.indexOf('node '));

describe('npm test output off a terminal', { timeout: 120_000 }, () => {
  it('sets NO_COLOR when stdout is not a terminal', () => {
    const r = spawnSync('sh', ['-c', `${prelude} node -e "process.stdout.write(String(process.env.NO_COLOR))"`], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: undefined },
    });
    expect(r.stdout).toBe('1');
  });

  it('vitest under turbo-style forced colour prints no escape codes with it', () => {
    const r = spawnSync('npx', ['vitest', 'run', 'test/tp-topology.test.ts'], {
      cwd: join(REPO_ROOT, 'packages', 'plugin-kv-connector'),
      encoding: 'utf8',
      env: { ...process.env, FORCE_COLOR: '1', NO_COLOR: '1' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('passed');
    expect(`${r.stdout}${r.stderr}`).not.toContain('\u001b[');
  });
});
