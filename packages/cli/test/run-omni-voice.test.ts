/**
 * `omnistage run examples/omni-voice/pipeline.yaml` (thinker -> talker x2 -> code2wav, reference
 * engines, real processes): 20 concurrent inputs, both talker replicas used; a talker replica
 * SIGKILLed mid-run is retried and restarted and every request still completes; with
 * `restart: never` and a single talker the affected requests fail, naming stage, replica and exit
 * status, and the run exits 1 after tearing everything down.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, requireBuiltCli, runCleanups, runCli, startCli, type OmniEventLine } from './helpers.js';
import {
  OMNI_VOICE,
  OMNI_VOICE_PROMPTS,
  RUN_FIXTURES,
  dispatches,
  explain,
  expectNothingLeft,
  jsonRecords,
  readBytes,
  requireFreshBuild,
  wavDataBytes,
  type RunRecord,
} from './run-helpers.js';

beforeAll(() => {
  requireBuiltCli();
  requireFreshBuild();
});
afterEach(runCleanups);

const PROMPTS = readFileSync(OMNI_VOICE_PROMPTS, 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '');
const REQUEST_IDS = PROMPTS.map((_, i) => `r${i + 1}`);
/** Talker tokens take 50 ms each (24 tokens: ~1.2 s a request), so requests are in flight when we kill. */
const SLOW_TALKER = JSON.stringify({ 1: { token_delay_ms: 50 } });

/** Every request has its thinker text (stage 0) and its audio (stage 2), and nothing else is printed. */
function expectAllOutputs(records: RunRecord[], out: string): void {
  expect(records).toHaveLength(2 * PROMPTS.length);
  const texts = records.filter((r) => r.stage_id === 0);
  const audio = records.filter((r) => r.stage_id === 2);
  expect(texts.map((r) => r.request_id).sort()).toEqual([...REQUEST_IDS].sort());
  expect(audio.map((r) => r.request_id).sort()).toEqual([...REQUEST_IDS].sort());
  for (const t of texts) {
    expect(t).toMatchObject({ type: 'text', replica_id: 0 });
    expect(t.text!.length).toBeGreaterThan(0);
  }
  for (const a of audio) {
    expect(a).toMatchObject({ type: 'audio', replica_id: 0 });
    expect(a.path).toBe(join(out, `${a.request_id}-stage2.wav`));
    expect(wavDataBytes(readBytes(a.path!))).toBeGreaterThan(0);
  }
}

describe('omnistage run examples/omni-voice', { timeout: 120_000 }, () => {
  it('serves the 20 prompts of prompts.txt concurrently and uses both talker replicas', async () => {
    const box = await createSandbox();
    const out = join(box.root, 'out');
    const r = await runCli(
      [
        'run',
        OMNI_VOICE,
        '--input-file',
        OMNI_VOICE_PROMPTS,
        '--json',
        '--out',
        out,
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        box.eventsFile('voice'),
      ],
      { tmpDir: box.tmp, timeoutMs: 60_000 },
    );
    expect(r.code, explain(r)).toBe(0);
    expect(PROMPTS).toHaveLength(20);
    expectAllOutputs(jsonRecords(r.stdout), out);

    // The thinker texts differ per prompt (each output belongs to its own input).
    const texts = new Set(
      jsonRecords(r.stdout)
        .filter((x) => x.stage_id === 0)
        .map((x) => x.text),
    );
    expect(texts.size).toBe(20);

    // Stage 1 (talker, 2 replicas): every request dispatched once, spread over both replicas.
    const talker = dispatches(r.events, 1);
    expect(talker.map((d) => d.request_id).sort()).toEqual([...REQUEST_IDS].sort());
    const perReplica = [0, 1].map((id) => talker.filter((d) => d.replica_id === id).length);
    expect(perReplica[0]).toBeGreaterThan(0);
    expect(perReplica[1]).toBeGreaterThan(0);
    expect(perReplica[0]! + perReplica[1]!).toBe(20);

    // Concurrent, not one after another: every request entered the thinker before the first one
    // reached the last stage.
    const thinker = dispatches(r.events, 0);
    const firstCode2wav = Math.min(...dispatches(r.events, 2).map((d) => d.ts));
    expect(thinker).toHaveLength(20);
    expect(Math.max(...thinker.map((d) => d.ts))).toBeLessThanOrEqual(firstCode2wav);

    // Each thinker latent (16 × 1536 float32, over the 64 KiB threshold) went through one /dev/shm
    // file, held by the talker and the user and freed once both were done; the talker's smaller
    // latents went inline (no payload events); teardown found nothing left to sweep.
    const stored = r.events.filter((e) => e.type === 'payload:stored');
    expect(stored).toHaveLength(20);
    for (const e of stored)
      expect(e).toMatchObject({ via: 'shm', size: 16 * 1536 * 4, stage_id: 0, holders: ['stage:1', 'user'] });
    expect(new Set(stored.map((e) => e['request_id']))).toEqual(new Set(REQUEST_IDS));
    const freed = r.events.filter((e) => e.type === 'payload:freed');
    expect(freed.map((e) => e['key']).sort()).toEqual(stored.map((e) => e['key']).sort());
    // Freed by the talker's ack, or — when the talker process was descheduled between sending its
    // last output and its ack and code2wav finished first — by the end of the request.
    for (const e of freed) expect(['acknowledged', 'request_ended']).toContain(e['reason']);
    expect(r.events.filter((e) => e.type === 'payload:swept')).toEqual([expect.objectContaining({ files: 0 })]);
    await expectNothingLeft(box, r.events, -1);
  });

  it('completes every request when a talker replica is SIGKILLed mid-request: retry on the other replica and restart', async () => {
    const box = await createSandbox();
    const out = join(box.root, 'out');
    const cli = startCli(
      [
        'run',
        OMNI_VOICE,
        '--input-file',
        OMNI_VOICE_PROMPTS,
        '--json',
        '--out',
        out,
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        box.eventsFile('kill'),
        '--stage-overrides',
        SLOW_TALKER,
      ],
      { tmpDir: box.tmp },
    );
    // The first request that reaches the talker is in flight there for ~1.2 s: kill its replica.
    const first = await cli.waitForEvent((e) => e.type === 'request:dispatched' && e['stage_id'] === 1, 45_000);
    const victimReplica = first['replica_id'] as number;
    const spawned = cli
      .events()
      .filter((e) => e.type === 'replica:spawned' && e['stage_id'] === 1 && e['replica_id'] === victimReplica);
    expect(spawned).toHaveLength(1);
    const victimPid = spawned[0]!['pid'] as number;
    process.kill(victimPid, 'SIGKILL');

    const exit = await cli.waitExit(60_000);
    expect(exit.code, cli.describe()).toBe(0);
    expectAllOutputs(jsonRecords(cli.stdout()), out);
    const events = cli.events();

    // What happened is in the events...
    const died = events.filter((e) => e.type === 'replica:exit' && e['pid'] === victimPid);
    expect(died).toHaveLength(1);
    expect(died[0]).toMatchObject({
      stage_id: 1,
      replica_id: victimReplica,
      signal: 'SIGKILL',
      code: null,
      expected: false,
    });
    const restarts = events.filter((e) => e.type === 'replica:restart');
    expect(restarts).toEqual([
      expect.objectContaining({
        stage_id: 1,
        replica_id: victimReplica,
        attempt: 1,
        reason: 'killed by signal SIGKILL',
      }),
    ]);
    const respawned = events.filter(
      (e) => e.type === 'replica:spawned' && e['stage_id'] === 1 && e['replica_id'] === victimReplica,
    );
    // The replacement process (restart after backoff_ms; the run goes on for another ~1 s).
    expect(respawned).toHaveLength(2);
    expect(respawned[1]!['pid']).not.toBe(victimPid);
    // ...the request that was on the killed replica was dispatched to stage 1 a second time, on
    // the other replica (the only live one then)...
    const retried = dispatches(events, 1).filter((d) => d.request_id === first['request_id']);
    expect(retried.map((d) => d.replica_id)).toEqual([victimReplica, 1 - victimReplica]);
    expect(events.some((e) => e.type === 'pipeline:failed')).toBe(false);
    // ...and in the log.
    const log = cli.stderr();
    expect(log).toContain(
      `stage 1 replica ${victimReplica} (pid ${victimPid}) died (killed by signal SIGKILL) during request ${String(first['request_id'])}; retrying it once on another replica`,
    );
    expect(log).toMatch(/replica exited \(killed by signal SIGKILL\); restart 1\/2/);
    expect(log).toContain('20/20 request(s) completed');
    await expectNothingLeft(box, events, -1);
  });

  it('with restart: never and one talker, the affected requests fail naming stage, replica and exit status; exit 1 after teardown', async () => {
    const box = await createSandbox();
    const out = join(box.root, 'out');
    const cli = startCli(
      [
        'run',
        join(RUN_FIXTURES, 'voice-no-restart.yaml'),
        '--input-file',
        OMNI_VOICE_PROMPTS,
        '--json',
        '--out',
        out,
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        box.eventsFile('never'),
        '--stage-overrides',
        SLOW_TALKER,
      ],
      { tmpDir: box.tmp },
    );
    await cli.waitForEvent((e) => e.type === 'request:dispatched' && e['stage_id'] === 1, 45_000);
    const victim = cli.events().find((e) => e.type === 'replica:spawned' && e['stage_id'] === 1)!;
    const victimPid = victim['pid'] as number;
    process.kill(victimPid, 'SIGKILL');

    const exit = await cli.waitExit(60_000);
    expect(exit.code, cli.describe()).toBe(1);
    const events: OmniEventLine[] = cli.events();
    const stderr = cli.stderr();

    // No request reached the end (the only talker died while they were in it or waiting for it).
    const records = jsonRecords(cli.stdout());
    expect(records.filter((r) => r.stage_id === 2)).toEqual([]);
    // Each failed request is reported with the cause: stage, replica, pid and exit status.
    const failed = REQUEST_IDS.filter((id) => stderr.includes(`[${id}] error `));
    expect(failed).toEqual(REQUEST_IDS);
    for (const id of REQUEST_IDS) {
      const line = stderr.split('\n').find((l) => l.startsWith(`[${id}] error `))!;
      expect(line).toContain('stage 1');
      expect(line).toContain('replica 0');
      expect(line).toContain(`pid ${victimPid}`);
      expect(line).toContain('killed by signal SIGKILL');
    }
    expect(stderr).toMatch(/error OMNI_REQUEST_FAILED: 20 of 20 request\(s\) failed/);
    // The log does not promise a retry on another replica that does not exist.
    expect(stderr).not.toContain('retrying it once on another replica');

    expect(events.filter((e) => e.type === 'replica:restart')).toEqual([]);
    expect(events.find((e) => e.type === 'pipeline:failed')).toMatchObject({
      stage_id: 1,
      replica_id: 0,
      code: 'OMNI_WORKER_EXITED',
    });
    expect(events.find((e) => e.type === 'replica:exit' && e['pid'] === victimPid)).toMatchObject({
      signal: 'SIGKILL',
      expected: false,
    });
    // Torn down before exiting: every other replica stopped as asked, then pipeline:stopped.
    const others = events.filter((e) => e.type === 'replica:exit' && e['pid'] !== victimPid);
    expect(others).toHaveLength(2);
    expect(others.every((e) => e['expected'] === true)).toBe(true);
    await expectNothingLeft(box, events, -1);
  });

  it('on SIGINT mid-run stops the requests, tears down and says it was interrupted (exit 1)', async () => {
    const box = await createSandbox();
    const cli = startCli(
      [
        'run',
        OMNI_VOICE,
        '--input-file',
        OMNI_VOICE_PROMPTS,
        '--json',
        '--out',
        join(box.root, 'out'),
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        box.eventsFile('sigint'),
        '--stage-overrides',
        SLOW_TALKER,
      ],
      { tmpDir: box.tmp },
    );
    await cli.waitForEvent((e) => e.type === 'request:dispatched' && e['stage_id'] === 1, 45_000);
    cli.signal('SIGINT');
    const exit = await cli.waitExit(30_000);
    expect(exit.code, cli.describe()).toBe(130);
    const stderr = cli.stderr();
    expect(stderr).toMatch(/error OMNI_CANCELLED: interrupted by SIGINT: 0 of 20 request\(s\) completed before it/);
    // One line for the run, not twenty "request ... was aborted" lines.
    expect(stderr).not.toMatch(/^\[r\d+\] error/m);
    const events = cli.events();
    expect(events.find((e) => e.type === 'pipeline:stopping')).toMatchObject({ reason: 'interrupted' });
    expect(jsonRecords(cli.stdout()).filter((r) => r.stage_id === 2)).toEqual([]);
    await expectNothingLeft(box, events, -1);
  });
});
