/**
 * Off a terminal each stream carries one format: `--log-format json` makes every stderr line a
 * JSON record (status changes included) with no key twice (a replica's pid is `replica_pid`);
 * the default is plain lines only. A replica restart shows as one line naming stage/replica.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_FIXTURES,
  createSandbox,
  requireBuiltCli,
  runCleanups,
  startCli,
  waitFor,
  type Sandbox,
} from './helpers.js';

let box: Sandbox;
beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
});
afterAll(runCleanups);

async function upAndStop(extra: string[], name: string): Promise<string> {
  const cli = startCli(
    [
      'up',
      join(TEST_FIXTURES, 'two-stage.yaml'),
      '--engine',
      'reference',
      '--platform',
      'cpu',
      '--lock-dir',
      join(box.root, `locks-${name}`),
      ...extra,
    ],
    { tmpDir: box.tmp },
  );
  expect(await waitFor(() => cli.stderr().includes('pipeline is up'), 60_000), cli.describe()).toBe(true);
  cli.signal('SIGINT');
  expect((await cli.waitExit(30_000)).code, cli.describe()).toBe(130);
  return cli.stderr();
}

describe('stderr off a terminal', { timeout: 90_000 }, () => {
  it('--log-format json: every line is one JSON record without repeated keys', async () => {
    const stderr = await upAndStop(['--log-format', 'json'], 'json');
    const lines = stderr.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(4);
    for (const line of lines) {
      expect(() => JSON.parse(line) as unknown, line).not.toThrow();
      const keys = [...line.matchAll(/"([a-z_]+)":/g)].map((m) => m[1]);
      expect(new Set(keys).size, line).toBe(keys.length);
    }
    const ready = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => r['event'] === 'replica:ready');
    expect(ready).toHaveLength(2);
    expect(ready[0]).toMatchObject({
      stage: expect.any(Number),
      replica: 0,
      replica_pid: expect.any(Number),
      pid: expect.any(Number),
    });
  });

  it('default: plain lines only, no JSON records mixed in', async () => {
    const stderr = await upAndStop([], 'plain');
    const lines = stderr.split('\n').filter((l) => l !== '');
    expect(lines.some((l) => l.startsWith('{'))).toBe(false);
    expect(lines).toContain('INFO: received SIGINT, stopping the pipeline');
    expect(lines.filter((l) => /^stage \d replica 0: ready/.test(l))).toHaveLength(2);
  });

  it('a replica queued behind its launch group says whom it waits for, before it waits for locks', async () => {
    // Both stages on device 0: one launch group, stage 1 starts once stage 0 is ready.
    const stderr = await upAndStop(['--stage-overrides', JSON.stringify({ 1: { devices: '0' } })], 'queued');
    const lines = stderr.split('\n');
    const queued = lines.indexOf('stage 1 replica 0: queued behind stage 0 replica 0 (launch group 0)');
    expect(queued, stderr).toBeGreaterThanOrEqual(0);
    expect(lines.findIndex((l) => l.startsWith('stage 1 replica 0: waiting for device locks'))).toBeGreaterThan(queued);
    expect(lines.findIndex((l) => l.startsWith('stage 1 replica 0: waiting for device locks'))).toBeGreaterThan(
      lines.findIndex((l) => l.startsWith('stage 0 replica 0: ready')),
    );
  });
});
