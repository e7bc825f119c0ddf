/**
 * A plugin's tap replaces core's attach and still gets core's supervision: loaded with --plugin
 * from a real .mjs file, it waits for an HTTP port its engine never opens; the engine exits 7
 * while it waits. `omnistage up` must fail at once with exit 1, naming stage, replica, exit code
 * and the plugin — not at the stage's init deadline (60 s here).
 */
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_FIXTURES,
  createSandbox,
  readEvents,
  replicaPids,
  requireBuiltCli,
  runCleanups,
  runCli,
  startCli,
  waitAllDead,
  STACK_LINE,
} from './helpers.js';

const FIXTURE = join(TEST_FIXTURES, 'http-attach-plugin');
const STAGE_INIT_TIMEOUT_S = 60;

beforeAll(requireBuiltCli);
afterEach(runCleanups);

describe('a plugin tap that replaces attach', { timeout: 60_000 }, () => {
  it("fails the run as soon as the replica's process exits during it, naming stage, replica, exit code and plugin", async () => {
    const box = await createSandbox();
    const events = box.eventsFile('plugin-attach');
    const t0 = Date.now();
    const proc = startCli(
      [
        'up',
        join(FIXTURE, 'pipeline.yaml'),
        '--plugin',
        join(FIXTURE, 'plugin.mjs'),
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        events,
        '--stage-init-timeout',
        String(STAGE_INIT_TIMEOUT_S),
      ],
      { tmpDir: box.tmp },
    );
    const exit = await proc.waitExit(STAGE_INIT_TIMEOUT_S * 1000);
    const elapsedMs = Date.now() - t0;
    expect(exit, proc.describe()).toEqual({ code: 1, signal: null });
    const stderr = proc.stderr();
    const line = stderr.split('\n').find((l) => l.includes('error OMNI_')) ?? '';
    expect(line).toContain('error OMNI_WORKER_EXITED');
    expect(line).toContain('stage 0 replica 0');
    expect(line).toContain('exit code 7');
    expect(line).toContain('plugin "port-wait-plugin"');
    expect(stderr).toContain('portwait engine: loading failed, exit 7'); // the engine's last words
    expect(stderr).not.toMatch(STACK_LINE);
    // Ended by the exit, not by the deadline: far below the stage init timeout it was given.
    expect(elapsedMs).toBeLessThan((STAGE_INIT_TIMEOUT_S * 1000) / 2);
    const all = readEvents(events, true);
    expect(all.find((e) => e.type === 'pipeline:failed')).toMatchObject({
      code: 'OMNI_WORKER_EXITED',
      stage_id: 0,
      replica_id: 0,
      phase: 'attach',
    });
    expect(all.find((e) => e.type === 'replica:exit')).toMatchObject({ code: 7, expected: false });
    expect(await waitAllDead(replicaPids(all), 2_000)).not.toBeNull();
    expect(box.lockDirLeftovers()).toEqual([]);
    expect(box.runDirLeftovers()).toEqual([]);
  });
});

describe('a plugin whose validateStage throws a TypeError', { timeout: 60_000 }, () => {
  it.each(['validate', 'plan', 'up'])(
    '%s: OMNI_PLUGIN_FAILED naming the plugin and the callback, exit 2, no stack',
    async (command) => {
      const box = await createSandbox();
      const r = await runCli(
        [
          command,
          join(FIXTURE, 'pipeline.yaml'),
          '--plugin',
          join(FIXTURE, 'validate-throws-plugin.mjs'),
          '--platform',
          'cpu',
          ...(command === 'up' ? ['--lock-dir', box.lockDir] : []),
        ],
        { tmpDir: box.tmp },
      );
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(
        'error OMNI_PLUGIN_FAILED: plugin "buggy-validator" failed in stage type "portstage" validateStage (stage 0): TypeError:',
      );
      expect(r.stderr).not.toContain('bug in omnistage');
      expect(r.stderr).not.toMatch(STACK_LINE);
    },
  );
});
