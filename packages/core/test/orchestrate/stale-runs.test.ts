import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  processIdentity,
  processStartTicks,
  reapStaleRuns,
  writeRunOwner,
  type RunOwner,
} from '../../src/orchestrate/stale-runs.js';
import { cleanupTempDirs, CORE_DIR, requireBuilt, tempDir } from '../runtime/helpers.js';

beforeAll(() => requireBuilt('orchestrate/stale-runs.ts')); // the stopped writer runs the build
afterEach(cleanupTempDirs);

const here = processIdentity();

/** An owner record as a run of this host, pid namespace and boot writes it. */
const owner = (run_id: string, pid: number, payload_dir: string, start_ticks: number | null = null): RunOwner => ({
  run_id,
  pid,
  start_ticks,
  payload_dir,
  ...here,
});

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function runDir(tmp: string, name: string, owner?: RunOwner): string {
  const dir = join(tmp, `omnistage-run-${name}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'control.sock'), ''); // stands for the socket a killed orchestrator leaves
  if (owner) writeFileSync(join(dir, 'owner.json'), JSON.stringify(owner));
  return dir;
}

function payloads(dir: string, runId: string, keys: string[]): void {
  for (const k of keys) writeFileSync(join(dir, `omnistage-${runId}-${k}`), 'bytes in flight');
}

describe('leftovers of orchestrators that died without teardown', () => {
  it('removes the run directory and the payload files of a run whose owner is gone, nothing else', async () => {
    const tmp = await tempDir();
    const shm = await tempDir();
    const pid = deadPid();
    const dead = runDir(tmp, 'dead01', owner('mx1-dead', pid, shm));
    payloads(shm, 'mx1-dead', ['s0r0_a_0', 's0r0_a_1']);
    payloads(shm, 'mx1-live', ['s0r0_b_0']);
    const live = runDir(tmp, 'live01', owner('mx1-live', process.pid, shm, processStartTicks(process.pid)));
    const creating = runDir(tmp, 'new001'); // no owner record yet: a run being created right now
    writeFileSync(join(tmp, 'omnistage-run-file'), 'not a directory');

    const reaped = await reapStaleRuns({ tmpDir: tmp });
    expect(reaped).toEqual([{ run_id: 'mx1-dead', pid, run_dir: dead, payload_files: 2 }]);
    expect(existsSync(dead)).toBe(false);
    expect(readdirSync(shm)).toEqual(['omnistage-mx1-live-s0r0_b_0']);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(creating)).toBe(true);
    expect(await reapStaleRuns({ tmpDir: tmp })).toEqual([]); // idempotent
  });

  it('takes a recycled pid (same number, another start time) for a dead owner', async () => {
    const tmp = await tempDir();
    const shm = await tempDir();
    const ticks = processStartTicks(process.pid);
    expect(ticks).not.toBeNull(); // Linux: /proc is there
    const dir = runDir(tmp, 'reused', owner('mx2-reused', process.pid, shm, ticks! - 1));
    payloads(shm, 'mx2-reused', ['k']);
    expect((await reapStaleRuns({ tmpDir: tmp })).map((r) => r.run_id)).toEqual(['mx2-reused']);
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync(shm)).toEqual([]);
  });

  it("skips the caller's own run, a young unreadable record, and never throws for a missing temp dir", async () => {
    const tmp = await tempDir();
    const shm = await tempDir();
    const mine = runDir(tmp, 'mine01', owner('mx3-mine', deadPid(), shm));
    const junk = runDir(tmp, 'junk01');
    writeFileSync(join(junk, 'owner.json'), '{"run_id": 1}');
    expect(await reapStaleRuns({ tmpDir: tmp, except: mine })).toEqual([]);
    expect(existsSync(mine) && existsSync(junk)).toBe(true);
    expect(await reapStaleRuns({ tmpDir: join(tmp, 'absent') })).toEqual([]);
  });

  it('never judges an owner from another pid namespace by its pid; one from an earlier boot is gone', async () => {
    const tmp = await tempDir();
    const shm = await tempDir();
    expect(here.pid_ns).toMatch(/^pid:\[\d+\]$/);
    const pid = deadPid();
    const other = runDir(tmp, 'ns0001', { ...owner('mx5-otherns', pid, shm), pid_ns: 'pid:[1]' });
    const unknown = runDir(tmp, 'ns0002', { ...owner('mx5-unknown', pid, shm), pid_ns: null });
    payloads(shm, 'mx5-otherns', ['k']);
    expect(await reapStaleRuns({ tmpDir: tmp })).toEqual([]); // its pid may be alive over there
    expect(existsSync(other) && existsSync(unknown)).toBe(true);
    expect(readdirSync(shm)).toEqual(['omnistage-mx5-otherns-k']);
    runDir(tmp, 'boot01', { ...owner('mx5-oldboot', process.pid, shm), pid_ns: 'pid:[1]', boot_id: 'not-this-boot' });
    expect((await reapStaleRuns({ tmpDir: tmp })).map((r) => r.run_id)).toEqual(['mx5-oldboot']);
  });

  it('reaps a run directory killed before its owner record was written, once it is old and nobody listens in it', async () => {
    const tmp = await tempDir();
    const old = new Date(Date.now() - 10 * 60_000);
    const orphan = runDir(tmp, 'nown01'); // SIGKILL between mkdtemp and writeRunOwner
    utimesSync(orphan, old, old);
    const young = runDir(tmp, 'nown02'); // a run being created right now
    const listening = join(tmp, 'omnistage-run-nown03');
    mkdirSync(listening);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(listening, 'control.sock'), resolve));
    utimesSync(listening, old, old);
    try {
      const reaped = await reapStaleRuns({ tmpDir: tmp });
      expect(reaped).toEqual([{ run_id: null, pid: null, run_dir: orphan, payload_files: 0 }]);
      expect(existsSync(orphan)).toBe(false);
      expect(existsSync(young) && existsSync(listening)).toBe(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('reaps a run directory whose owner record was cut short or is empty, like one without a record, once it is old and nobody listens in it', async () => {
    const tmp = await tempDir();
    const shm = await tempDir();
    const old = new Date(Date.now() - 10 * 60_000);
    const cut = runDir(tmp, 'cut001');
    writeFileSync(join(cut, 'owner.json'), JSON.stringify(owner('mx6-cut', deadPid(), shm)).slice(0, 40));
    const empty = runDir(tmp, 'cut002');
    writeFileSync(join(empty, 'owner.json'), '');
    const young = runDir(tmp, 'cut003');
    writeFileSync(join(young, 'owner.json'), '{"run_id": "mx6-young", "pi');
    for (const d of [cut, empty]) utimesSync(d, old, old);
    const reaped = await reapStaleRuns({ tmpDir: tmp });
    expect(reaped.sort((a, b) => a.run_dir.localeCompare(b.run_dir))).toEqual([
      { run_id: null, pid: null, run_dir: cut, payload_files: 0 },
      { run_id: null, pid: null, run_dir: empty, payload_files: 0 },
    ]);
    expect(existsSync(young)).toBe(true);
  });

  it('a writer stopped in the middle of its owner record leaves no record at all, never a cut one', async () => {
    // A file size limit of 0 stops the write at its first byte, as a SIGKILL there would.
    const tmp = await tempDir();
    const dir = runDir(tmp, 'cutw01');
    const writer = `import { writeRunOwner } from ${JSON.stringify(join(CORE_DIR, 'dist', 'orchestrate', 'stale-runs.js'))};
      await writeRunOwner(process.argv[1], { run_id: 'mx7-cut', payload_dir: process.argv[1] });`;
    const res = spawnSync(
      'sh',
      ['-c', 'ulimit -f 0; exec "$@"', 'sh', process.execPath, '--input-type=module', '-e', writer, dir],
      {
        encoding: 'utf8',
      },
    );
    expect(res.status === 0 && res.signal === null, 'the write must have been stopped').toBe(false);
    expect(existsSync(join(dir, 'owner.json'))).toBe(false);
  });

  it('writes an owner record that a later reaper reads as alive while this process runs', async () => {
    const tmp = await tempDir();
    const dir = runDir(tmp, 'owned1');
    await writeRunOwner(dir, { run_id: 'mx4-owned', payload_dir: tmp });
    expect(await reapStaleRuns({ tmpDir: tmp })).toEqual([]);
    expect(existsSync(dir)).toBe(true);
  });
});
