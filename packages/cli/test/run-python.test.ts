/**
 * `omnistage run` with Python engines (engine: python, on packages/worker-python): the round trip
 * Python → Node reference → Python with both tensors over the 64 KiB shm threshold, nothing left
 * running after the orchestrator is SIGKILLed mid-stream, and plan-time errors of a bad entry.
 * Streaming and abort through the API: packages/plugin-python/test/python-engine.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  createSandbox,
  isAlive,
  readEvents,
  replicaPids,
  requireBuiltCli,
  runCleanups,
  runCli,
  startCli,
  waitAllDead,
  waitFor,
} from './helpers.js';
import { explain, jsonRecords } from './run-helpers.js';

const FIXTURES = join(REPO_ROOT, 'packages', 'plugin-python', 'test', 'fixtures');
const ROUNDTRIP = join(FIXTURES, 'python-roundtrip.yaml');

beforeAll(requireBuiltCli);
afterEach(runCleanups);

/** Pids of live processes running the fixture engine. */
function enginePids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('tensor_engine.py') && isAlive(Number(name)))
        pids.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

describe('omnistage run with Python engines', { timeout: 90_000 }, () => {
  it('moves >64 KiB tensors Python → Node → Python through shared memory, every file acknowledged', async () => {
    const box = await createSandbox();
    const events = box.eventsFile('python');
    const r = await runCli(
      [
        'run',
        ROUNDTRIP,
        '--platform',
        'cpu',
        '--input',
        'the quick brown fox',
        '--json',
        '--lock-dir',
        box.lockDir,
        '--events',
        events,
        '--out',
        join(box.root, 'out'),
      ],
      { tmpDir: box.tmp, env: { OMNISTAGE_PAYLOAD_DIR: join(box.root) }, timeoutMs: 60_000 },
    );
    expect(r.code, explain(r)).toBe(0);
    const records = jsonRecords(r.stdout);
    expect(records.find((x) => x.stage_id === 2)).toMatchObject({ type: 'text', text: '24576 floats via shm' });
    const stored = r.events.filter((e) => e.type === 'payload:stored');
    expect(stored.map((e) => [e['stage_id'], e['via'], e['size']])).toEqual([
      [0, 'shm', 288 * 64 * 4],
      [1, 'shm', 16 * 1536 * 4],
    ]);
    expect(stored[0]!['holders']).toContain('stage:1');
    const freed = r.events.filter((e) => e.type === 'payload:freed').map((e) => [e['key'], e['reason']]);
    expect(freed).toEqual(expect.arrayContaining(stored.slice(1).map((e) => [e['key'], 'acknowledged'])));
    expect(r.events.filter((e) => e.type === 'replica:ready')).toHaveLength(3);
    expect(readdirSync(box.root).filter((n) => n.startsWith('omnistage-'))).toEqual([]);
  });

  it('leaves nothing running after the orchestrator is SIGKILLed mid-stream', async () => {
    const box = await createSandbox();
    const events = box.eventsFile('killed');
    const overrides = JSON.stringify({ 0: { repeat: 1000, word_delay_s: 0.05, marker_dir: box.root } });
    // Payloads in the sandbox: the killed run's private payload directory waits for a next run in
    // the same TMPDIR (run-reap.test.ts), which never comes for a sandbox.
    const cli = startCli(
      [
        'run',
        ROUNDTRIP,
        '--platform',
        'cpu',
        '--input',
        'a b c d',
        '--lock-dir',
        box.lockDir,
        '--events',
        events,
        '--stage-overrides',
        overrides,
      ],
      {
        tmpDir: box.tmp,
        env: { OMNISTAGE_PAYLOAD_DIR: box.tmp },
      },
    );
    await cli.waitForEvent((e) => e.type === 'request:dispatched' && e['stage_id'] === 0, 60_000);
    const pids = replicaPids(cli.events());
    expect(pids).toHaveLength(3);
    expect(enginePids().length).toBeGreaterThanOrEqual(2);
    cli.signal('SIGKILL');
    expect(await cli.waitExit(10_000)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await waitAllDead(pids, 15_000), `replicas still alive: ${pids.filter(isAlive).join(', ')}`).not.toBeNull();
    expect(
      await waitFor(() => enginePids().length === 0, 15_000),
      `python engines left: ${enginePids().join(', ')}`,
    ).toBe(true);
    expect(readEvents(events).some((e) => e.type === 'pipeline:stopped')).toBe(false); // no teardown ran: the replicas died on their own
  });

  it('a missing entry file, class or interpreter fails the plan with exit 2 at its YAML line', async () => {
    const box = await createSandbox();
    const cases: [string, RegExp][] = [
      ['entry: ./missing.py', /engine file .*missing\.py does not exist/],
      [`entry: "${join(FIXTURES, 'tensor_engine.py')}:Absent"`, /has no class Absent \(classes: TensorEngine\)/],
      [
        `entry: "${join(FIXTURES, 'tensor_engine.py')}:TensorEngine", python: ./no-python-here`,
        /the Python interpreter ".*no-python-here" \(engine_args.python\) was not found/,
      ],
    ];
    for (const [i, [args, message]] of cases.entries()) {
      const file = join(box.root, `bad-${i}.yaml`);
      await writeFile(
        file,
        `stage_args:\n  - stage_id: 0\n    stage_type: llm\n    engine: python\n    runtime: { devices: "0" }\n    engine_args: { ${args} }\n`,
      );
      const r = await runCli(['plan', file, '--platform', 'cpu'], { tmpDir: box.tmp });
      expect(r.code, explain(r)).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain(`${file}:6:`);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
  });
});
