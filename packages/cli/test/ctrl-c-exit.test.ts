/**
 * Ctrl-C (SIGINT to the whole process group, as a terminal sends it) gives the same exit status
 * however omnistage was started: `node bin/omnistage.js` and `npx omnistage` both end with 130
 * (128 + SIGINT) after the teardown; SIGTERM gives 143. npm itself re-raises the signal, so the
 * CLI must not report 0 for a run a user interrupted.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_BIN,
  REPO_ROOT,
  TEST_FIXTURES,
  createSandbox,
  requireBuiltCli,
  runCleanups,
  waitFor,
  type Sandbox,
} from './helpers.js';

let box: Sandbox;
beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
});
afterAll(runCleanups);

/** Starts `up` in its own process group, signals the group once it is up, returns the shell's `$?`. */
async function stopWith(
  launcher: string[],
  signal: 'SIGINT' | 'SIGTERM',
  name: string,
): Promise<{ status: number; stderr: string }> {
  const args = [
    ...launcher,
    'up',
    join(TEST_FIXTURES, 'two-stage.yaml'),
    '--engine',
    'reference',
    '--platform',
    'cpu',
    '--lock-dir',
    join(box.root, `locks-${name}`),
  ];
  const child = spawn(args[0]!, args.slice(1), {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: box.tmp },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, sig) => resolve({ code, signal: sig })),
  );
  try {
    expect(await waitFor(() => stderr.includes('pipeline is up'), 60_000), stderr).toBe(true);
    process.kill(-child.pid!, signal);
    const { code, signal: sig } = await exited;
    // What a shell reports as $?: the code, or 128 + the signal that ended the process.
    return { status: code ?? 128 + constants.signals[sig!], stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  }
}

describe('exit status after a stop signal', { timeout: 120_000 }, () => {
  it('Ctrl-C: 130 with node and with npx, after the teardown', async () => {
    const viaNode = await stopWith([process.execPath, CLI_BIN], 'SIGINT', 'node');
    expect(viaNode.status, viaNode.stderr).toBe(130);
    expect(viaNode.stderr).toMatch(/stage 0 replica 0: stopped/);
    const viaNpx = await stopWith(['npx', '--no-install', 'omnistage'], 'SIGINT', 'npx');
    expect(viaNpx.status, viaNpx.stderr).toBe(130);
  });

  it('SIGTERM: 143', async () => {
    expect((await stopWith([process.execPath, CLI_BIN], 'SIGTERM', 'term')).status).toBe(143);
  });
});
