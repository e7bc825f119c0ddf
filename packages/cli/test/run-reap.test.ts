/**
 * An orchestrator SIGKILLed with payloads in flight cannot clean up: its replicas die with it
 * (parent-death signal) and its locks were released after attach, but its run directory and the
 * /dev/shm files its stages had in flight stay. The next omnistage on the host removes them
 * (`run:reaped`), so tmpfs memory is not lost until reboot.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createSandbox,
  eventSchemaProblems,
  readEvents,
  replicaPids,
  requireBuiltCli,
  runCleanups,
  runCli,
  startCli,
  waitAllDead,
} from './helpers.js';
import { OMNI_VOICE, QUICKSTART, explain, requireFreshBuild } from './run-helpers.js';

beforeAll(() => {
  requireBuiltCli();
  requireFreshBuild();
});
afterEach(runCleanups);

describe('leftovers of a SIGKILLed omnistage', { timeout: 60_000 }, () => {
  it('are removed by the next run on the host: run directory and in-flight /dev/shm payload files', async () => {
    const box = await createSandbox();
    const shm = join(box.root, 'shm');
    await mkdir(shm);
    const env = { OMNISTAGE_PAYLOAD_DIR: shm };
    // A slow talker keeps the thinker's latents (96 KiB, over the threshold) in flight.
    const killed = startCli(
      [
        'run',
        OMNI_VOICE,
        '--input',
        'one',
        '--input',
        'two',
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        box.eventsFile('killed'),
        '--stage-overrides',
        JSON.stringify({ 1: { token_delay_ms: 500 } }),
      ],
      { tmpDir: box.tmp, env },
    );
    const stored = await killed.waitForEvent((e) => e.type === 'payload:stored', 30_000);
    const staleRun = stored.run_id!;
    killed.signal('SIGKILL');
    expect(await killed.waitExit(5_000)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await waitAllDead(replicaPids(killed.events()), 2_000)).not.toBeNull();
    // The run's payloads are in its private directory `omnistage-<run>+<random>` (pool segments, `=`, are not payloads).
    const runDirs = readdirSync(shm).filter((n) => n.startsWith(`omnistage-${staleRun}+`));
    expect(runDirs).toHaveLength(1);
    const leftFiles = readdirSync(join(shm, runDirs[0]!)).filter((n) => n.startsWith(`omnistage-${staleRun}-`));
    expect(leftFiles.length).toBeGreaterThan(0); // nobody was left to delete them...
    expect(box.runDirLeftovers()).toHaveLength(1);

    const events = box.eventsFile('next');
    const next = await runCli(
      [
        'run',
        QUICKSTART,
        '--input',
        'a fox',
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--out',
        join(box.root, 'out'),
        '--events',
        events,
      ],
      {
        tmpDir: box.tmp,
        env,
        timeoutMs: 45_000,
      },
    );
    expect(next.code, explain(next)).toBe(0);
    // ...until the next run: it says what it removed, and nothing of the dead run is left.
    const all = readEvents(events, true);
    expect(eventSchemaProblems(all)).toEqual([]);
    const reaped = all.filter((e) => e.type === 'run:reaped');
    expect(reaped).toEqual([
      expect.objectContaining({ stale_run_id: staleRun, pid: killed.pid, payload_files: leftFiles.length }),
    ]);
    expect(next.stderr).toContain(`run ${staleRun}`);
    expect(readdirSync(shm)).toEqual([]);
    expect(box.runDirLeftovers()).toEqual([]);
    expect(existsSync(box.lockDir) ? readdirSync(box.lockDir) : []).toEqual([]);
  });
});
