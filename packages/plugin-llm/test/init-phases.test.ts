/**
 * Init phases (docs/protocol.md "Init phases") with real processes and real locks: phase-aware
 * reference replicas (`init_phases`, `load_ms`, `profile_ms`) on one virtual device load together
 * and profile one at a time; a replica that exits or hangs inside its window frees it and fails
 * naming the window; an HTTP engine (the stand-in `vllm serve`) on the same device still has the
 * device alone for its whole init. Every claim is read from the events' timestamps.
 */
import { readdir } from 'node:fs/promises';
import { Omnistage, bringUp, loadPipelineConfig, planPipeline } from '@omnistage/core';
import type { OmniEvent, RunningPipeline } from '@omnistage/core';
import { afterEach, describe, expect, it } from 'vitest';
// The built plugin: its reference engine runs dist/reference/worker.js in a real process.
import { llmPlugin } from '@omnistage/plugin-llm';
import { FAKE_VLLM, freeBasePort, killLeftovers, rejection, removeDir, tempDir } from './vllm-fixture.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `n` chained reference stages, all on virtual device 0, with the given engine args each. */
function coLocated(args: Record<string, unknown>[], extraStage = ''): string {
  const stages = args.map(
    (a, i) => `  - stage_id: ${i}
    stage_type: llm
    engine: reference
    runtime: { devices: "0" }
    engine_args: ${JSON.stringify({ model_stage: `s${i}`, max_num_seqs: 1, ...a })}
${i > 0 ? `    engine_input_source: [${i - 1}]\n` : ''}${i === args.length - 1 && extraStage === '' ? '    final_output: true\n    final_output_type: text\n' : ''}`,
  );
  return `stage_args:\n${stages.join('')}${extraStage}`;
}

interface Run {
  events: OmniEvent[];
  lockDir: string;
  result: Promise<RunningPipeline>;
}

async function start(yaml: string, stageInitTimeoutS = 60, vllmBasePort?: number): Promise<Run> {
  const lockDir = await tempDir('phases-locks-');
  const omni = new Omnistage({
    plugins: [llmPlugin({ vllmCommand: FAKE_VLLM, ...(vllmBasePort ? { vllmBasePort } : {}) })],
    lockDir,
  });
  const events: OmniEvent[] = [];
  const pids = new Set<number>();
  omni.events.onAny((e) => {
    events.push(e);
    if (e.type === 'replica:spawned') pids.add(e.pid);
  });
  const config = await loadPipelineConfig({ text: yaml, path: '/cfg/phases.yaml' });
  const plan = await planPipeline(omni, config, {
    platform: 'cpu',
    model: 'facebook/opt-125m',
    purpose: 'launch',
    env: {},
  });
  const result = bringUp(omni, plan, { stopGraceMs: 2_000, stageInitTimeoutS });
  result.catch(() => undefined);
  cleanups.push(async () => {
    await result.then(
      (p) => p.stop('test cleanup'),
      () => undefined,
    );
    killLeftovers(pids);
    await removeDir(lockDir);
  });
  return { events, lockDir, result };
}

type Ref = { stage_id: number; replica_id: number };
const ofStage = (events: OmniEvent[], stage: number) =>
  events.filter((e) => 'stage_id' in e && (e as Ref).stage_id === stage);
function ts(events: OmniEvent[], stage: number, match: (e: OmniEvent) => boolean): number {
  const e = ofStage(events, stage).find(match);
  if (!e)
    throw new Error(`stage ${stage}: no such event in ${JSON.stringify(ofStage(events, stage).map((x) => x.type))}`);
  return e.ts;
}
const win = (state: string) => (e: OmniEvent) => e.type === 'replica:window' && e.state === state;
/** A stage's load phase: spawned (welcome follows) → it asks for its window. */
const loadOf = (events: OmniEvent[], s: number): [number, number] => [
  ts(events, s, (e) => e.type === 'replica:spawned'),
  ts(events, s, win('waiting')),
];
const windowOf = (events: OmniEvent[], s: number): [number, number] => [
  ts(events, s, win('start')),
  ts(events, s, win('end')),
];
const overlap = (a: [number, number], b: [number, number]): boolean => a[0] < b[1] && b[0] < a[1];

describe('init phases', { timeout: 90_000 }, () => {
  it('co-located phase-aware replicas overlap their load phases and never their exclusive windows', async () => {
    const knobs = { init_phases: true, load_ms: 3_000, profile_ms: 300 };
    const run = await start(coLocated([knobs, knobs, knobs]));
    await run.result;
    const loads = [0, 1, 2].map((s) => loadOf(run.events, s));
    const windows = [0, 1, 2].map((s) => windowOf(run.events, s));
    // All three were loading at one moment: the last spawned before the first asked for its window.
    expect(Math.max(...loads.map((l) => l[0]))).toBeLessThan(Math.min(...loads.map((l) => l[1])));
    for (let a = 0; a < 3; a++) {
      for (let b = a + 1; b < 3; b++)
        expect(overlap(windows[a]!, windows[b]!), `windows of stages ${a} and ${b}`).toBe(false);
      // Nobody profiles while a neighbour loads.
      for (let b = 0; b < 3; b++)
        if (a !== b) expect(overlap(windows[a]!, loads[b]!), `window ${a} vs load ${b}`).toBe(false);
    }
    expect(run.events.filter((e) => e.type === 'replica:window' && e.state === 'start')).toHaveLength(3);
    expect(await readdir(run.lockDir)).toEqual([]);
  });

  it('with phases off the same replicas keep whole-init exclusivity (no window, inits one after another)', async () => {
    const knobs = { init_phases: false, load_ms: 300, profile_ms: 100 };
    const run = await start(coLocated([knobs, knobs]));
    await run.result;
    expect(run.events.some((e) => e.type === 'replica:window')).toBe(false);
    const released0 = ts(run.events, 0, (e) => e.type === 'lock:released');
    const acquired1 = ts(run.events, 1, (e) => e.type === 'lock:acquired');
    expect(acquired1).toBeGreaterThanOrEqual(released0);
    expect(ts(run.events, 0, (e) => e.type === 'replica:ready')).toBeLessThanOrEqual(acquired1);
  });

  for (const fault of ['exit', 'hang'] as const) {
    it(`a replica that ${fault === 'exit' ? 'dies' : 'hangs'} inside its window frees it and fails naming the window`, async () => {
      const ok = { init_phases: true, load_ms: 500, profile_ms: 100 };
      const bad = { ...ok, window_fault: fault, fail_exit_code: 7 };
      const run = await start(coLocated([bad, ok]), fault === 'hang' ? 8 : 60);
      const err = await rejection(run.result);
      if (fault === 'hang') {
        // Both replicas run under the one stage_init_timeout; the one waiting behind the hung
        // window can reach it first, so the failure names either, always in the window phase.
        expect(err.context).toMatchObject({ replica_id: 0, phase: 'window' });
        expect([0, 1]).toContain(err.context['stage_id']);
        expect(err.code).toBe('OMNI_ATTACH_TIMEOUT');
        if (err.context['stage_id'] === 0) expect(err.message).toContain('in its exclusive init window 1 on device 0');
      } else {
        expect(err.context).toMatchObject({ stage_id: 0, replica_id: 0, phase: 'window' });
        expect(err.code).toBe('OMNI_WORKER_EXITED');
        expect(err.message).toContain('exit code 7');
      }
      // Its window opened and nothing of either replica holds the device afterwards.
      expect(ts(run.events, 0, win('start'))).toBeGreaterThan(0);
      expect(await readdir(run.lockDir)).toEqual([]);
      // The device is free: a new run on the same lock dir gets its windows.
      const again = await start(coLocated([ok, ok]));
      await again.result;
      expect(again.events.filter((e) => e.type === 'replica:window' && e.state === 'end')).toHaveLength(2);
    });
  }

  it('an HTTP engine on the same device as a phase-aware replica has the device alone for its whole init', async () => {
    const basePort = await freeBasePort();
    const vllmStage = `  - stage_id: 1
    stage_type: llm
    engine: vllm
    engine_input_source: [0]
    final_output: true
    runtime: { devices: "0", env: { FAKE_VLLM_STARTUP_MS: "800" } }
    engine_args: { model_stage: talker, gpu_memory_utilization: 0.4 }
`;
    const run = await start(
      coLocated([{ init_phases: true, load_ms: 1_500, profile_ms: 300, gpu_memory_utilization: 0.4 }], vllmStage),
      60,
      basePort,
    );
    await run.result;
    const http: [number, number] = [
      ts(run.events, 1, (e) => e.type === 'lock:acquired'),
      ts(run.events, 1, (e) => e.type === 'lock:released'),
    ];
    // Its whole init (spawn → ready) lies inside the time it held the device alone.
    expect(ts(run.events, 1, (e) => e.type === 'replica:spawned')).toBeGreaterThanOrEqual(http[0]);
    expect(ts(run.events, 1, (e) => e.type === 'replica:ready')).toBeLessThanOrEqual(http[1]);
    // The phase-aware replica neither loaded nor profiled meanwhile.
    expect(overlap(http, loadOf(run.events, 0))).toBe(false);
    expect(overlap(http, windowOf(run.events, 0))).toBe(false);
    expect(await readdir(run.lockDir)).toEqual([]);
  });
});
