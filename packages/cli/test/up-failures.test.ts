/**
 * Done-when 2, 3, 5 and 7 with real processes: replicas that exit or hang during attach, deadlines
 * (`--stage-init-timeout`, `--init-timeout`), Ctrl-C during bring-up, a replica dying while the
 * pipeline runs, and the orchestrator itself being SIGKILLed. After each, nothing of the run may be
 * left: no replica process (zombies count as dead), no lock or holder file, no run directory.
 *
 * Fixture: two reference LLM stages on devices 0 and 1 (two launch groups, started concurrently);
 * stage 1 gets the failure knobs through --stage-overrides, stage 0 stays healthy so teardown has a
 * live replica to stop.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_FIXTURES,
  createSandbox,
  eventSchemaProblems,
  isAlive,
  readEvents,
  replicaPids,
  requireBuiltCli,
  runCleanups,
  startCli,
  waitAllDead,
  STACK_LINE,
  type CliProcess,
  type OmniEventLine,
  type Sandbox,
} from './helpers.js';

const TWO_STAGE = join(TEST_FIXTURES, 'two-stage.yaml');

beforeAll(requireBuiltCli);
afterEach(runCleanups);

/** Starts `up` on the two-stage fixture with its own sandbox; `stage1` goes to stage 1's engine_args. */
async function up(
  stage1: Record<string, unknown>,
  extra: string[] = [],
): Promise<{ proc: CliProcess; box: Sandbox; events: string }> {
  const box = await createSandbox();
  const events = box.eventsFile('up');
  const overrides = JSON.stringify({ '1': { engine_args: stage1 } });
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
      overrides,
      ...extra,
    ],
    // Payloads in the sandbox too: a SIGKILLed run's private payload directory waits for the next
    // run in the same TMPDIR (run-reap.test.ts), which never comes for a sandbox.
    { tmpDir: box.tmp, env: { OMNISTAGE_PAYLOAD_DIR: box.tmp } },
  );
  return { proc, box, events };
}

/** Everything the run started is gone: processes (within 2 s), locks, holder files, run directory. */
async function expectNothingLeft(proc: CliProcess, box: Sandbox, events: OmniEventLine[]): Promise<void> {
  const pids = replicaPids(events);
  expect(
    await waitAllDead(pids, 2_000),
    `replicas still alive: ${pids.filter(isAlive).join(', ')}\n${proc.describe()}`,
  ).not.toBeNull();
  expect(box.lockDirLeftovers(), 'lock dir').toEqual([]);
  expect(box.runDirLeftovers(), 'run dir').toEqual([]);
}

/** The run failed (exit 1) with `code`, no stack trace, teardown completed, `pipeline:failed` recorded. */
async function expectFailedRun(
  proc: CliProcess,
  box: Sandbox,
  eventsFile: string,
  code: string,
): Promise<{ stderr: string; events: OmniEventLine[]; failed: OmniEventLine }> {
  const exit = await proc.waitExit(30_000);
  expect(exit, proc.describe()).toEqual({ code: 1, signal: null });
  const stderr = proc.stderr();
  expect(stderr).toContain(`error ${code}:`);
  expect(stderr).not.toMatch(STACK_LINE);
  const events = readEvents(eventsFile, true);
  expect(eventSchemaProblems(events)).toEqual([]);
  const failed = events.find((e) => e.type === 'pipeline:failed');
  expect(failed, proc.describe()).toBeDefined();
  expect(failed).toMatchObject({ code });
  expect(events.some((e) => e.type === 'pipeline:stopped')).toBe(true);
  await expectNothingLeft(proc, box, events);
  return { stderr, events, failed: failed! };
}

/** The first line of the printed error (`error CODE: message`). */
function errorLine(stderr: string): string {
  return stderr.split('\n').find((l) => l.includes('error OMNI_')) ?? '';
}

describe('a replica that exits during attach', { timeout: 60_000 }, () => {
  it.each(['hello', 'ready'] as const)(
    'fail_phase %s (exit 7) fails the run with exit 1 naming stage, replica, phase and exit code',
    async (phase) => {
      const { proc, box, events } = await up({ fail_phase: phase, fail_exit_code: 7 });
      const { stderr, events: all, failed } = await expectFailedRun(proc, box, events, 'OMNI_WORKER_EXITED');
      const line = errorLine(stderr);
      expect(line).toContain('stage 1 replica 0');
      expect(line).toContain(`during ${phase}`);
      expect(line).toContain('exit code 7');
      // The replica's own last words are shown.
      expect(stderr).toContain(`fail_phase=${phase}, exit 7`);
      expect(failed).toMatchObject({ stage_id: 1, replica_id: 0, phase });
      expect(all.find((e) => e.type === 'replica:exit' && e['stage_id'] === 1)).toMatchObject({
        code: 7,
        signal: null,
        expected: false,
      });
    },
  );
});

describe('a replica that hangs during attach', { timeout: 60_000 }, () => {
  it.each(['hello', 'ready'] as const)(
    'hang_phase %s with --stage-init-timeout fails with OMNI_ATTACH_TIMEOUT naming stage, replica and phase',
    async (phase) => {
      const t0 = Date.now();
      const { proc, box, events } = await up({ hang_phase: phase }, ['--stage-init-timeout', '4']);
      const { stderr, failed } = await expectFailedRun(proc, box, events, 'OMNI_ATTACH_TIMEOUT');
      const line = errorLine(stderr);
      expect(line).toContain('stage 1 replica 0');
      expect(line).toContain(`no ${phase} message`);
      expect(failed).toMatchObject({ stage_id: 1, replica_id: 0, phase });
      // The deadline, not something else, ended it: not before 4 s, not much later.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(4_000);
      expect(Date.now() - t0).toBeLessThan(20_000);
    },
  );
});

describe('--init-timeout', { timeout: 60_000 }, () => {
  it('shorter than the bring-up fails with OMNI_INIT_TIMEOUT, cancels the slow replica and leaves nothing running', async () => {
    const t0 = Date.now();
    const { proc, box, events } = await up({ init_delay_ms: 30_000 }, ['--init-timeout', '4']);
    const { stderr, failed } = await expectFailedRun(proc, box, events, 'OMNI_INIT_TIMEOUT');
    expect(errorLine(stderr)).toContain('init_timeout');
    expect(errorLine(stderr)).toContain('stage 1 replica 0');
    expect(failed).toMatchObject({ stage_id: 1, replica_id: 0 });
    // Cancelled at the deadline, not after the 30 s the engine wanted.
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});

describe('stopping', { timeout: 60_000 }, () => {
  it('SIGTERM once up tears down like SIGINT: exit 143 (128 + SIGTERM), nothing left', async () => {
    const { proc, box, events } = await up({});
    await proc.waitForEvent((e) => e.type === 'pipeline:ready');
    proc.signal('SIGTERM');
    expect(await proc.waitExit(30_000), proc.describe()).toEqual({ code: 143, signal: null });
    const all = readEvents(events, true);
    expect(eventSchemaProblems(all)).toEqual([]);
    expect(all.find((e) => e.type === 'pipeline:stopping')).toMatchObject({ reason: 'signal SIGTERM' });
    expect(all.at(-1)?.type).toBe('pipeline:stopped');
    await expectNothingLeft(proc, box, all);
  });

  it('SIGINT during bring-up cancels it (exit 130, OMNI_CANCELLED) and stops what was started', async () => {
    const { proc, box, events } = await up({ init_delay_ms: 30_000 });
    // Stage 0 is up and stage 1 is loading (it said hello, so it holds device 1's lock).
    await proc.waitForEvent((e) => e.type === 'replica:ready' && e['stage_id'] === 0);
    await proc.waitForEvent((e) => e.type === 'replica:spawned' && e['stage_id'] === 1);
    proc.signal('SIGINT');
    const exit = await proc.waitExit(30_000);
    expect(exit, proc.describe()).toEqual({ code: 130, signal: null });
    expect(errorLine(proc.stderr())).toContain('OMNI_CANCELLED');
    const all = readEvents(events, true);
    expect(eventSchemaProblems(all)).toEqual([]);
    expect(all.find((e) => e.type === 'pipeline:failed')).toMatchObject({ code: 'OMNI_CANCELLED' });
    expect(all.some((e) => e.type === 'pipeline:stopped')).toBe(true);
    await expectNothingLeft(proc, box, all);
  });

  it('a replica that dies while the pipeline runs fails it (exit 1) naming the stage and replica, and the rest is stopped', async () => {
    const { proc, box, events } = await up({});
    await proc.waitForEvent((e) => e.type === 'pipeline:ready');
    const victim = proc.events().find((e) => e.type === 'replica:spawned' && e['stage_id'] === 1)!['pid'] as number;
    process.kill(victim, 'SIGKILL');
    const { stderr, events: all, failed } = await expectFailedRun(proc, box, events, 'OMNI_WORKER_EXITED');
    expect(errorLine(stderr)).toContain('stage 1');
    expect(errorLine(stderr)).toContain('replica 0');
    expect(errorLine(stderr)).toContain('SIGKILL');
    expect(failed).toMatchObject({ stage_id: 1, replica_id: 0 });
    expect(all.find((e) => e.type === 'replica:exit' && e['pid'] === victim)).toMatchObject({
      code: null,
      signal: 'SIGKILL',
      expected: false,
    });
  });

  it('SIGKILL of omnistage takes its replicas down within 2 s (parent-death signal)', async () => {
    const { proc, box } = await up({});
    await proc.waitForEvent((e) => e.type === 'pipeline:ready');
    const pids = replicaPids(proc.events());
    expect(pids).toHaveLength(2);
    expect(pids.every(isAlive)).toBe(true);
    proc.signal('SIGKILL');
    const took = await waitAllDead(pids, 2_000);
    expect(took, `replicas still alive 2 s after SIGKILL: ${pids.filter(isAlive).join(', ')}`).not.toBeNull();
    console.info(`replicas dead ${Math.round(took!)} ms after SIGKILL of omnistage`);
    expect(await proc.waitExit(5_000)).toEqual({ code: null, signal: 'SIGKILL' });
    // The locks were released after attach, so even a SIGKILLed run leaves none behind. (Its run
    // directory stays until the next run on the host removes it: see run-reap.test.ts.)
    expect(box.lockDirLeftovers()).toEqual([]);
    expect(readdirSync(box.tmp).filter((n) => n.startsWith('omnistage-') && n.includes('+'))).toHaveLength(1); // its payload directory, for the reaper
  });
});
