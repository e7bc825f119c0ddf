/**
 * The committed `bin/omnistage.js` shim in a checkout that was never built (a fresh clone after
 * `npm ci`): the first call builds the CLI with the workspace's turbo, once, then runs the command;
 * an installation without dist/, a failed build and a half-built workspace are clear one-line
 * errors, never a stack trace. The shim runs for real in a copy of the repository layout; turbo is
 * a stand-in that records how it was called and writes the dist/main.js a build would.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_BIN, STACK_LINE } from './helpers.js';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** A checkout layout holding only the shim; `turbo` adds turbo.json and the stand-in turbo exiting with `turboExit`. */
function checkout(opts: { turbo?: boolean; turboExit?: number } = {}): { root: string; shim: string; calls: string } {
  const root = mkdtempSync(join(tmpdir(), 'omni-shim-'));
  roots.push(root);
  const bin = join(root, 'packages', 'cli', 'bin');
  mkdirSync(bin, { recursive: true });
  const shim = join(bin, 'omnistage.js');
  copyFileSync(CLI_BIN, shim);
  const calls = join(root, 'turbo-calls.jsonl');
  if (opts.turbo ?? true) {
    writeFileSync(join(root, 'turbo.json'), '{}\n');
    const dotBin = join(root, 'node_modules', '.bin');
    mkdirSync(dotBin, { recursive: true });
    const turbo = join(dotBin, 'turbo');
    writeFileSync(
      turbo,
      `#!${process.execPath}
const fs = require('node:fs');
const path = require('node:path');
fs.appendFileSync(${JSON.stringify(calls)}, JSON.stringify({ argv: process.argv.slice(2), cwd: process.cwd() }) + '\\n');
const exit = ${opts.turboExit ?? 0};
if (exit === 0) {
  const dist = path.join(process.cwd(), 'packages', 'cli', 'dist');
  fs.mkdirSync(dist, { recursive: true });
  fs.writeFileSync(path.join(dist, 'main.js'), "console.log('main ran with ' + JSON.stringify(process.argv.slice(2)));\\n");
}
process.exit(exit);
`,
    );
    chmodSync(turbo, 0o755);
  }
  return { root, shim, calls };
}

function run(shim: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [shim, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const turboCalls = (file: string): { argv: string[]; cwd: string }[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { argv: string[]; cwd: string })
    : [];

describe('the omnistage bin shim', () => {
  it('builds a never-built checkout once, with turbo from the repository root, then runs the command', () => {
    const { root, shim, calls } = checkout();
    const first = run(shim, ['plan', 'x.yaml']);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain('first run in this checkout: building it');
    expect(first.stdout).toBe('main ran with ["plan","x.yaml"]\n');
    expect(turboCalls(calls)).toEqual([
      { argv: ['run', 'build', '--filter=omnistage...', '--output-logs=errors-only'], cwd: root },
    ]);

    const second = run(shim, ['--version']);
    expect(second.stdout).toBe('main ran with ["--version"]\n');
    expect(second.stderr).toBe('');
    expect(turboCalls(calls)).toHaveLength(1); // built once
  });

  it('says a failed build failed, and where to see why', () => {
    const { shim } = checkout({ turboExit: 3 });
    const r = run(shim, ['--help']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      'omnistage: the build failed (see above); `npm run build` at the repository root shows why',
    );
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it('an installation without dist/ (no workspace to build it in) is an error, not a stack trace', () => {
    const { shim } = checkout({ turbo: false });
    const r = run(shim, ['--help']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /omnistage: .*dist\/main\.js is missing: this installation of omnistage is incomplete; reinstall it/,
    );
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it('a built CLI whose packages are not built points at the build', () => {
    const { root, shim, calls } = checkout();
    const dist = join(root, 'packages', 'cli', 'dist');
    mkdirSync(dist, { recursive: true });
    writeFileSync(join(dist, 'main.js'), "import '../../core/dist/index.js';\n");
    const r = run(shim, ['--help']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Cannot find module');
    expect(r.stderr).toContain('hint: build the workspace first: npm run build (at the repository root)');
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(turboCalls(calls)).toEqual([]); // dist/main.js exists: no automatic build
  });
});
