/**
 * Signals through npx, the way service managers and scripts send them: SIGTERM or SIGINT to the
 * pid of `npx omnistage serve|up` (not to its process group, as a terminal would) drains or stops
 * the CLI exactly as if it had been sent to the CLI itself, and when npx dies outright (SIGKILL)
 * the CLI notices its parent is gone and drains too. Afterwards no process of the run is left:
 * every process that inherited the test's marker from the environment (npm, its shell, the CLI,
 * the replicas, which also carry OMNISTAGE_RUN_ID) is gone.
 *
 * npm runs a bin through `<script-shell> -c`; the repository's .npmrc makes that bash, which execs
 * the bin, so npm's forwarded signals reach the CLI. With npm's default `sh` (dash), the shell sits
 * in between, swallows SIGINT and dies of SIGTERM: the parent-death guarantee covers that.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  TEST_FIXTURES,
  createSandbox,
  isAlive,
  onCleanup,
  requireBuiltCli,
  runCleanups,
  waitFor,
} from './helpers.js';

beforeAll(requireBuiltCli);
afterEach(runCleanups);

/** Live processes whose environment holds `MARK=<mark>`, with whether they are replicas of a run. */
function marked(mark: string): { pid: number; replica: boolean }[] {
  const found: { pid: number; replica: boolean }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let env: string[];
    try {
      env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile, or another user's
    }
    if (!env.includes(`OMNISTAGE_TEST_MARK=${mark}`) || !isAlive(Number(entry))) continue;
    found.push({ pid: Number(entry), replica: env.some((v) => v.startsWith('OMNISTAGE_RUN_ID=')) });
  }
  return found;
}

interface Npx {
  pid: number;
  mark: string;
  stderr(): string;
  /** npx's own exit. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The CLI's stderr closed: the CLI (which outlives npx when npx is killed) has exited. */
  closed: Promise<unknown>;
}

/** `npx omnistage COMMAND two-stage.yaml …` from the repository, in its own process group, once it is up. */
async function startNpx(command: 'serve' | 'up', scriptShell?: string): Promise<Npx> {
  const box = await createSandbox();
  const mark = randomUUID();
  const args = ['--no-install', 'omnistage', command, join(TEST_FIXTURES, 'two-stage.yaml')];
  args.push('--engine', 'reference', '--platform', 'cpu', '--lock-dir', box.lockDir);
  if (command === 'serve') args.push('--port', '0', '--host', '127.0.0.1');
  const child = spawn('npx', args, {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      TMPDIR: box.tmp,
      OMNISTAGE_TEST_MARK: mark,
      ...(scriptShell === undefined ? {} : { npm_config_script_shell: scriptShell }),
    },
  });
  // Whatever a test leaves behind dies with it: npm's group and every marked process.
  onCleanup(() => {
    for (const p of marked(mark)) process.kill(p.pid, 'SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let closedYet = false;
  const closed = new Promise<void>((resolve) => child.stderr.on('close', resolve)).then(() => (closedYet = true));
  const up = command === 'serve' ? /serving "[^"]*" at http/ : /pipeline is up/;
  expect(await waitFor(() => up.test(stderr) || closedYet, 90_000), stderr).toBe(true);
  expect(stderr).toMatch(up);
  const running = marked(mark);
  // The scan sees the run (so the checks below can fail): both replicas carry the run id.
  expect(running.filter((p) => p.replica).length, JSON.stringify(running)).toBe(2);
  return { pid: child.pid!, mark, stderr: () => stderr, exited, closed };
}

async function expectNothingLeft(npx: Npx): Promise<void> {
  await npx.closed;
  expect(await waitFor(() => marked(npx.mark).length === 0, 30_000), JSON.stringify(marked(npx.mark))).toBe(true);
}

describe('signals through npx', { timeout: 180_000 }, () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to the pid of \`npx omnistage serve\` drains and stops the server (exit 0)`, async () => {
      const npx = await startNpx('serve');
      process.kill(npx.pid, signal);
      expect(await npx.exited, npx.stderr()).toEqual({ code: 0, signal: null });
      expect(npx.stderr()).toContain(`received ${signal}: draining`);
      expect(npx.stderr()).toContain('drained and stopped');
      await expectNothingLeft(npx);
    });
  }

  it('SIGTERM to the pid of `npx omnistage up` stops it as if sent to the CLI (exit 143)', async () => {
    const npx = await startNpx('up');
    process.kill(npx.pid, 'SIGTERM');
    expect(await npx.exited, npx.stderr()).toEqual({ code: 143, signal: null });
    expect(npx.stderr()).toContain('received SIGTERM, stopping the pipeline');
    await expectNothingLeft(npx);
  });

  it('npx SIGKILLed: the CLI notices its parent died and drains', async () => {
    const npx = await startNpx('serve');
    process.kill(npx.pid, 'SIGKILL');
    expect(await npx.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await expectNothingLeft(npx);
    expect(npx.stderr()).toContain('the parent process exited: draining');
    expect(npx.stderr()).toContain('drained and stopped');
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`npm's default sh in between: ${signal} to npx still drains the CLI (its shell or npm died)`, async () => {
      const npx = await startNpx('serve', 'sh');
      process.kill(npx.pid, signal);
      await npx.exited;
      await expectNothingLeft(npx);
      expect(npx.stderr()).toContain('the parent process exited: draining');
      expect(npx.stderr()).toContain('drained and stopped');
    });
  }
});
