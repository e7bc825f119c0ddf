/**
 * Done-when 4: two `omnistage up` runs that share a lock dir and devices. Real proper-lockfile
 * locks, real processes: the runs never hold a device's init lock at the same time (compared
 * through both runs' lock:acquired / lock:released events), a run that has to wait says who it
 * waits for, and a wait longer than `--stage-init-timeout` fails closed (exit 1) naming the
 * device and the holder (pid, run, stage, replica of the other run).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_FIXTURES,
  createSandbox,
  eventSchemaProblems,
  isAlive,
  lockIntervals,
  readEvents,
  replicaPids,
  requireBuiltCli,
  runCleanups,
  startCli,
  waitAllDead,
  STACK_LINE,
  type Sandbox,
} from './helpers.js';

const TWO_STAGE = join(TEST_FIXTURES, 'two-stage.yaml');

beforeAll(requireBuiltCli);
afterEach(runCleanups);

function startUp(box: Sandbox, name: string, overrides: object, extra: string[] = []) {
  const events = box.eventsFile(name);
  const proc = startCli(
    [
      'up',
      TWO_STAGE,
      '--engine',
      'reference',
      '--platform',
      'cpu',
      '--lock-dir',
      box.lockDir,
      '--events',
      events,
      '--stage-overrides',
      JSON.stringify(overrides),
      ...extra,
    ],
    { tmpDir: box.tmp },
  );
  return { proc, events };
}

describe('a lost init lock', { timeout: 60_000 }, () => {
  it('fails that replica (OMNI_LOCK_COMPROMISED, exit 1) instead of crashing, and tears down cleanly', async () => {
    const box = await createSandbox();
    const run = startUp(box, 'compromised', { '0': { engine_args: { init_delay_ms: 8_000 } } });
    await run.proc.waitForEvent((e) => e.type === 'lock:acquired' && e['device'] === '0');
    // Someone removes the lock while stage 0 is initialising; the lock refresh notices within seconds.
    rmSync(join(box.lockDir, 'device-0.lock'), { recursive: true, force: true });
    const exit = await run.proc.waitExit(30_000);
    expect(exit, run.proc.describe()).toEqual({ code: 1, signal: null });
    const stderr = run.proc.stderr();
    expect(stderr).not.toMatch(STACK_LINE);
    expect(stderr).toContain('error OMNI_LOCK_COMPROMISED: the init lock of device 0 was lost');
    const events = readEvents(run.events, true);
    expect(eventSchemaProblems(events)).toEqual([]);
    expect(events.find((e) => e.type === 'pipeline:failed')).toMatchObject({
      code: 'OMNI_LOCK_COMPROMISED',
      stage_id: 0,
      replica_id: 0,
    });
    expect(await waitAllDead(replicaPids(events), 2_000)).not.toBeNull();
    expect(box.lockDirLeftovers()).toEqual([]);
    expect(box.runDirLeftovers()).toEqual([]);
  });
});

describe('two runs sharing a lock dir', { timeout: 90_000 }, () => {
  it('never hold the same device at once, and the one that waits names the holder', async () => {
    const box = await createSandbox();
    // Both stages "load" for a while, so each init lock is held long enough to be contended.
    const slow = { engine_args: { init_delay_ms: 700 } };
    const a = startUp(box, 'a', { '0': slow, '1': slow });
    const b = startUp(box, 'b', { '0': slow, '1': slow });
    await a.proc.waitForEvent((e) => e.type === 'pipeline:ready', 45_000);
    await b.proc.waitForEvent((e) => e.type === 'pipeline:ready', 45_000);
    const eventsA = a.proc.events();
    const eventsB = b.proc.events();

    // Per device, the lock intervals of both runs (4 in all: 2 runs × 1 replica) never overlap.
    const ia = lockIntervals(eventsA);
    const ib = lockIntervals(eventsB);
    for (const device of ['0', '1']) {
      const all = [...(ia.get(device) ?? []), ...(ib.get(device) ?? [])].sort((x, y) => x[0] - y[0]);
      expect(all, `device ${device}`).toHaveLength(2);
      for (let i = 1; i < all.length; i++) {
        const [, prevEnd, prevWho] = all[i - 1]!;
        const [start, , who] = all[i]!;
        expect(
          start,
          `device ${device}: ${who} acquired at ${start} while ${prevWho} held it until ${prevEnd}`,
        ).toBeGreaterThanOrEqual(prevEnd);
      }
    }

    // The contention was real: someone waited, and was told who held the device.
    const waits = [...eventsA, ...eventsB].filter((e) => e.type === 'lock:waiting' && e['holder'] !== null);
    expect(waits.length, 'no lock:waiting event naming a holder').toBeGreaterThan(0);
    for (const w of waits) {
      const waiterIsA = eventsA.includes(w);
      const other = waiterIsA ? b.proc : a.proc;
      const otherRun = (waiterIsA ? eventsB : eventsA)[0]!.run_id;
      expect(w['holder']).toMatchObject({ pid: other.pid, run_id: otherRun, stage_id: w['stage_id'], replica_id: 0 });
    }

    a.proc.signal('SIGINT');
    b.proc.signal('SIGINT');
    expect(await a.proc.waitExit(30_000), a.proc.describe()).toEqual({ code: 130, signal: null });
    expect(await b.proc.waitExit(30_000), b.proc.describe()).toEqual({ code: 130, signal: null });
    const finalA = readEvents(a.events, true);
    const finalB = readEvents(b.events, true);
    expect(eventSchemaProblems([...finalA, ...finalB])).toEqual([]);
    const pids = [...replicaPids(finalA), ...replicaPids(finalB)];
    expect(pids).toHaveLength(4);
    expect(await waitAllDead(pids, 2_000), `alive: ${pids.filter(isAlive).join(', ')}`).not.toBeNull();
    expect(box.lockDirLeftovers()).toEqual([]);
    expect(box.runDirLeftovers()).toEqual([]);
  });

  it('a lock wait longer than --stage-init-timeout fails closed (exit 1) naming the device and its holder', async () => {
    const box = await createSandbox();
    // Run A: stage 0 keeps device 0's init lock for a long time.
    const a = startUp(box, 'holder', { '0': { engine_args: { init_delay_ms: 20_000 } } });
    const heldBy = await a.proc.waitForEvent((e) => e.type === 'lock:acquired' && e['device'] === '0');
    await a.proc.waitForEvent((e) => e.type === 'replica:ready' && e['stage_id'] === 1);

    // Run B: both stages on device 0 (one launch group), so the only thing it can fail on is the wait.
    const t0 = Date.now();
    const b = startUp(box, 'waiter', { '1': { runtime: { devices: '0' } } }, ['--stage-init-timeout', '1.5']);
    const exit = await b.proc.waitExit(30_000);
    expect(exit, b.proc.describe()).toEqual({ code: 1, signal: null });
    expect(Date.now() - t0).toBeLessThan(15_000);
    const stderr = b.proc.stderr();
    expect(stderr).not.toMatch(STACK_LINE);
    const line = stderr.split('\n').find((l) => l.includes('error OMNI_')) ?? '';
    expect(line).toContain('error OMNI_LOCK_TIMEOUT:');
    expect(line).toContain('stage 0 replica 0 gave up waiting for device 0');
    expect(line).toContain(`pid ${a.proc.pid}`);
    expect(line).toContain(`run ${String(heldBy.run_id)}`);
    expect(line).toContain('stage 0, replica 0');
    const eventsB = readEvents(b.events, true);
    expect(eventSchemaProblems(eventsB)).toEqual([]);
    expect(eventsB.find((e) => e.type === 'pipeline:failed')).toMatchObject({
      code: 'OMNI_LOCK_TIMEOUT',
      stage_id: 0,
      replica_id: 0,
      phase: 'lock',
    });
    expect(eventsB.find((e) => e.type === 'lock:waiting' && e['device'] === '0' && e['holder'] !== null)).toMatchObject(
      {
        holder: { pid: a.proc.pid, run_id: heldBy.run_id, stage_id: 0, replica_id: 0 },
      },
    );
    // The live status on stderr said whom it was waiting for.
    expect(stderr).toMatch(
      new RegExp(
        `stage 0 replica 0: waiting for device 0 \\(locked by pid ${a.proc.pid}, run ${String(heldBy.run_id)}, stage 0 replica 0\\)`,
      ),
    );
    // B never took device 0 and started nothing; A still holds it, undisturbed.
    expect(eventsB.some((e) => e.type === 'lock:acquired' || e.type === 'replica:spawned')).toBe(false);
    expect(a.proc.exitStatus()).toBeNull();
    expect(a.proc.events().some((e) => e.type === 'lock:released' && e['device'] === '0')).toBe(false);

    // Ctrl-C on A while it is still coming up: cancelled (exit 1), and nothing of either run is left.
    a.proc.signal('SIGINT');
    expect(await a.proc.waitExit(30_000), a.proc.describe()).toEqual({ code: 130, signal: null });
    expect(await waitAllDead(replicaPids(a.proc.events()), 2_000)).not.toBeNull();
    expect(box.lockDirLeftovers()).toEqual([]);
    expect(box.runDirLeftovers()).toEqual([]);
  });
});
