/**
 * Readiness re-checks of HTTP replicas, end to end against the stand-in `vllm serve`
 * (fixtures/fake-vllm.mjs) run as a child of its replica process (FAKE_VLLM_SERVER_CHILD), so that
 * SIGSTOP freezes the API server while the replica's own process stays running: only the
 * readiness check (GET /health) can notice. The file's `runtime:` sets the check's pace.
 */
import {
  createRouter,
  Omnistage,
  bringUp,
  loadPipelineConfig,
  planPipeline,
  type OmniEvent,
  type RunningPipeline,
} from '@omnistage/core';
import { afterEach, describe, expect, it } from 'vitest';
import { llmPlugin } from '../src/llm-plugin.js';
import {
  FAKE_VLLM,
  eventually,
  freeBasePort,
  killLeftovers,
  readEvents,
  readRecords,
  removeDir,
  tempDir,
} from './vllm-fixture.js';

const TIMEOUT = 60_000;

const PIPELINE = `
runtime:
  readiness_interval_s: 0.25
  readiness_failures: 2
stage_args:
  - stage_id: 0
    engine: vllm
    final_output: true
    runtime:
      devices: "0,1"
      num_replicas: 2
      env: { FAKE_VLLM_SERVER_CHILD: "1", FAKE_VLLM_TOKEN_DELAY_MS: 40 }
    engine_args: { max_num_seqs: 4 }
    default_sampling_params: { temperature: 0.0, max_tokens: 4 }
`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Up {
  pipeline: RunningPipeline;
  events: OmniEvent[];
  /** When each event arrived (epoch ms). */
  seenAt: Map<OmniEvent, number>;
  recordDir: string;
  /** The pid of a replica's stand-in API server (the launcher's child). */
  serverPid(replica: number): Promise<number>;
}

async function upWithServerChildren(): Promise<Up> {
  const recordDir = await tempDir('fake-vllm-rec-');
  const lockDir = await tempDir('fake-vllm-locks-');
  const basePort = await freeBasePort([0, 1]);
  const previous = process.env['FAKE_VLLM_RECORD_DIR'];
  process.env['FAKE_VLLM_RECORD_DIR'] = recordDir;
  cleanups.push(async () => {
    killLeftovers([...(await readRecords(recordDir)).values()].map((r) => r.pid));
    if (previous === undefined) delete process.env['FAKE_VLLM_RECORD_DIR'];
    else process.env['FAKE_VLLM_RECORD_DIR'] = previous;
    await removeDir(recordDir);
    await removeDir(lockDir);
  });
  const omni = new Omnistage({ plugins: [llmPlugin({ vllmCommand: FAKE_VLLM, vllmBasePort: basePort })], lockDir });
  const events: OmniEvent[] = [];
  const seenAt = new Map<OmniEvent, number>();
  const record = (e: OmniEvent): void => {
    events.push(e);
    seenAt.set(e, Date.now());
  };
  omni.events.on('replica:unresponsive', record);
  omni.events.on('replica:responsive', record);
  omni.events.on('request:dispatched', record);
  const config = await loadPipelineConfig({ text: PIPELINE, path: '/cfg/readiness.yaml' });
  const plan = await planPipeline(omni, config, {
    platform: 'cpu',
    model: 'facebook/opt-125m',
    purpose: 'launch',
    runId: `test-${process.pid}-ready`,
  });
  const pipeline = await bringUp(omni, plan, { stopGraceMs: 2_000 });
  cleanups.push(() => pipeline.stop('test cleanup'));
  const serverPid = async (replica: number): Promise<number> => {
    const rec = (await readRecords(recordDir)).get(basePort + replica);
    expect(rec, `the stand-in of replica ${replica} wrote its record`).toBeDefined();
    cleanups.push(() => continueQuietly(rec!.pid)); // never leave a stopped process behind
    return rec!.pid;
  };
  return { pipeline, events, seenAt, recordDir, serverPid };
}

function continueQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // gone
  }
}

const dispatchedTo = (events: OmniEvent[], requestId: string): number[] =>
  events.flatMap((e) => (e.type === 'request:dispatched' && e.request_id === requestId ? [e.replica_id] : []));

describe('engine vllm: readiness re-checks', () => {
  it(
    'a stopped API server fails its checks and leaves rotation (its request retried on the other replica), and comes back when it answers again',
    async () => {
      const { pipeline, events, seenAt, recordDir, serverPid } = await upWithServerChildren();
      const route = createRouter(pipeline);
      // A long request; the replica it went to gets frozen while it streams.
      const long = route.complete('a long answer', { requestId: 'long', params: { 0: { max_tokens: 40 } } });
      expect(await eventually(() => dispatchedTo(events, 'long').length === 1, 20_000)).toBe(true);
      const victim = dispatchedTo(events, 'long')[0]!;
      const other = 1 - victim;
      const pid = await serverPid(victim);
      expect(
        await eventually(async () => (await readEvents(recordDir, pid)).some((e) => e.event === 'request'), 20_000),
      ).toBe(true);
      expect(pipeline.replicas.find((r) => r.plan.replica_id === victim)!.process.pid).not.toBe(pid); // the replica's process is the launcher

      const stoppedAt = Date.now();
      process.kill(pid, 'SIGSTOP');
      const finals = await long;
      const out = events.find((e) => e.type === 'replica:unresponsive' && e.replica_id === victim);
      expect(out, 'replica:unresponsive for the frozen replica').toBeDefined();
      expect(out!.type === 'replica:unresponsive' && out!.reason).toMatch(
        /2 readiness checks failed in a row \(last: no answer within 250 ms\)/,
      );
      console.log(
        `readiness: the stopped HTTP replica left rotation ${seenAt.get(out!)! - stoppedAt} ms after SIGSTOP (interval 0.25 s, 2 failures)`,
      );
      // Its in-flight request was ended and retried once on the other replica.
      expect(finals).toHaveLength(1);
      expect(finals[0]).toMatchObject({ replica_id: other, attempt: 1 });
      expect(dispatchedTo(events, 'long')).toEqual([victim, other]);
      // Out of rotation: new requests go to the other replica only, and the frozen one is not killed.
      for (const id of ['while-out-1', 'while-out-2']) await route.complete('hi', { requestId: id });
      expect([...dispatchedTo(events, 'while-out-1'), ...dispatchedTo(events, 'while-out-2')]).toEqual([other, other]);
      expect(pipeline.liveReplicas(0).map((r) => r.plan.replica_id)).toEqual([other]);

      process.kill(pid, 'SIGCONT');
      expect(
        await eventually(() => events.some((e) => e.type === 'replica:responsive' && e.replica_id === victim), 20_000),
      ).toBe(true);
      expect(
        pipeline
          .liveReplicas(0)
          .map((r) => r.plan.replica_id)
          .sort(),
      ).toEqual([0, 1]);
      for (const id of ['back-1', 'back-2']) await route.complete('hi', { requestId: id });
      expect([...dispatchedTo(events, 'back-1'), ...dispatchedTo(events, 'back-2')].sort()).toEqual([0, 1]);
    },
    TIMEOUT,
  );
});
