/**
 * Core API acceptance tests for planning through hooks and bring-up (done-when 8), with real
 * processes and real device locks: a tiny custom stage type + engine (a plugin defined here) whose
 * worker is `fixtures/env-worker.mjs`, attaching through `@omnistage/core/worker` (dist/).
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import type { OmniEvent } from '../../src/events/types.js';
import { OmniError } from '../../src/errors.js';
import { Omnistage } from '../../src/omnistage.js';
import { bringUp } from '../../src/pipeline/bring-up.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import type { RunningPipeline } from '../../src/orchestrate/running-pipeline.js';
import { definePlugin, type OmnistagePlugin } from '../../src/plugin.js';
import { STAGE_USER } from '../../src/hooks/stages.js';
import type { InitPlan, ReplicaPlan } from '../../src/planning/types.js';
import { rejection } from '../config/helpers.js';
import {
  CORE_DIR,
  cleanupTempDirs,
  isAlive,
  killTracked,
  requireBuilt,
  tempDir,
  trackPid,
  waitFor,
} from '../runtime/helpers.js';

const WORKER = join(CORE_DIR, 'test', 'orchestrate', 'fixtures', 'env-worker.mjs');

/** Stage type `envstage`, engine `mjs`: devices per replica from engine_args.dpr (default 1). */
function envStagePlugin(): OmnistagePlugin {
  return definePlugin({
    name: 'test-envstage',
    apply(omni) {
      omni.defineStageType({
        name: 'envstage',
        defaultEngine: 'mjs',
        devicesPerReplica: (stage) => Number(stage.engine_args['dpr'] ?? 1),
      });
      omni.defineEngine({
        stageType: 'envstage',
        name: 'mjs',
        resolveWorker: (ctx) => ({
          command: process.execPath,
          args: [WORKER],
          env: { TEST_ENGINE_ARGS: JSON.stringify(ctx.engineArgs) },
          attach: 'control',
        }),
      });
    },
  });
}

/**
 * Stages 0 ("0,1") and 1 ("1,2") overlap on device 1: one launch group, started in plan order.
 * Stage 2 has two replicas on devices 3 and 4: two more groups, started concurrently with it.
 * Each replica locks one device (its first), so only the launch group can serialize stages 0 and 1.
 */
const GROUPS_YAML = `
stage_args:
  - stage_id: 0
    stage_type: envstage
    runtime: { devices: "0,1" }
    engine_args: { dpr: 2, delay_ms: 400 }
  - stage_id: 1
    stage_type: envstage
    runtime: { devices: "1,2" }
    engine_args: { dpr: 2, delay_ms: 400 }
    engine_input_source: [0]
  - stage_id: 2
    stage_type: envstage
    runtime: { devices: "3,4", num_replicas: 2 }
    engine_args: { delay_ms: 400 }
    engine_input_source: [1]
    final_output: true
`;

interface Harness {
  omni: Omnistage;
  events: OmniEvent[];
  lockDir: string;
  lines: { replica: ReplicaPlan; stream: string; line: string }[];
}

const pipelines: RunningPipeline[] = [];

async function harness(plugins: OmnistagePlugin[] = [envStagePlugin()]): Promise<Harness> {
  const lockDir = await tempDir();
  const omni = new Omnistage({ lockDir, plugins });
  const events: OmniEvent[] = [];
  omni.events.onAny((e) => {
    events.push(e);
    if (e.type === 'replica:spawned') trackPid(e.pid);
  });
  return { omni, events, lockDir, lines: [] };
}

async function plan(h: Harness, yaml: string, runId: string): Promise<InitPlan> {
  const config = await loadPipelineConfig({ text: yaml });
  // An explicit empty env: the plan does not depend on the test runner's OMNISTAGE_VISIBLE_DEVICES.
  return planPipeline(h.omni, config, { platform: 'cpu', env: {}, runId, purpose: 'launch' });
}

async function up(
  h: Harness,
  p: InitPlan,
  runId: string,
  opts: { stageInitTimeoutS?: number; initTimeoutS?: number } = {},
): Promise<RunningPipeline> {
  // The run id travels with the plan; the test still names it to check it reaches the replicas.
  expect(p.run_id).toBe(runId);
  const pipeline = await bringUp(h.omni, p, {
    stopGraceMs: 2_000,
    stageInitTimeoutS: opts.stageInitTimeoutS ?? 30,
    ...(opts.initTimeoutS === undefined ? {} : { initTimeoutS: opts.initTimeoutS }),
    onReplicaLine: (replica, stream, line) => h.lines.push({ replica, stream, line }),
  });
  pipelines.push(pipeline);
  return pipeline;
}

const key = (e: { stage_id: number; replica_id: number }): string => `${e.stage_id}/${e.replica_id}`;

function firstTs(events: OmniEvent[], type: OmniEvent['type'], k: string): number {
  const e = events.find(
    (x) => x.type === type && 'stage_id' in x && key(x as { stage_id: number; replica_id: number }) === k,
  );
  if (!e) throw new Error(`no ${type} event for ${k}`);
  return e.ts;
}

/** Nothing of the run is left: every spawned replica dead (zombies count as dead), lock dir empty. */
async function expectNothingLeft(h: Harness): Promise<void> {
  const pids = h.events.filter((e) => e.type === 'replica:spawned').map((e) => (e as { pid: number }).pid);
  expect(await waitFor(() => pids.every((p) => !isAlive(p)), 3_000)).toBe(true);
  const { readdirSync } = await import('node:fs');
  expect(readdirSync(h.lockDir)).toEqual([]);
}

beforeAll(() => requireBuilt('worker/connection.ts', 'worker/index.ts', 'control/protocol.ts'));

afterEach(async () => {
  for (const p of pipelines.splice(0)) await p.stop('test cleanup');
  killTracked();
  await cleanupTempDirs();
});

describe('planning through hooks', () => {
  it('a plugin tap that throws in buildArgs is OMNI_PLUGIN_FAILED naming the plugin and the hook', async () => {
    // A plugin's own OMNI_INTERNAL is the plugin's bug, not core's: it names the plugin too.
    for (const style of ['tap', 'tapPromise', 'internal'] as const) {
      const broken = definePlugin({
        name: 'broken-args',
        apply(omni) {
          const boom = (): never => {
            if (style === 'internal') throw new OmniError('OMNI_INTERNAL', 'cannot read engine_args.frobnicate');
            throw new TypeError('cannot read engine_args.frobnicate');
          };
          if (style === 'tap') omni.hooks.buildArgs.tap('broken-args', boom);
          else omni.hooks.buildArgs.tapPromise('broken-args', async () => boom());
        },
      });
      const h = await harness([envStagePlugin(), broken]);
      const err = await rejection(plan(h, GROUPS_YAML, 'r-plugin'));
      expect(err.code, style).toBe('OMNI_PLUGIN_FAILED');
      expect(err.context).toMatchObject({ plugin: 'broken-args', hook: 'buildArgs' });
      expect(err.message).toContain('broken-args');
      expect(err.message).toContain('buildArgs');
      expect(err.message).toContain('cannot read engine_args.frobnicate');
      // buildArgs runs while planning: a config-time failure (exit 2), like validateStage below.
      expect(err.exitCode).toBe(2);
    }
  });

  it.each(['validateStage', 'devicesPerReplica', 'lockDeviceCount', 'engine validateStage'] as const)(
    'a stage type whose %s throws a TypeError is OMNI_PLUGIN_FAILED naming the plugin, the callback and the stage (exit 2)',
    async (callback) => {
      const boom = (): never => {
        throw new TypeError(`${callback} read an undefined field`);
      };
      const broken = definePlugin({
        name: 'broken-stage-type',
        apply(api) {
          api.defineStageType({
            name: 'envstage',
            defaultEngine: 'mjs',
            devicesPerReplica: callback === 'devicesPerReplica' ? boom : () => 1,
            ...(callback === 'lockDeviceCount' ? { lockDeviceCount: boom } : {}),
            ...(callback === 'validateStage' ? { validateStage: boom } : {}),
          });
          api.defineEngine({
            stageType: 'envstage',
            name: 'mjs',
            resolveWorker: () => ({ command: process.execPath, args: [WORKER], env: {}, attach: 'control' }),
            ...(callback === 'engine validateStage' ? { validateStage: boom } : {}),
          });
        },
      });
      const h = await harness([broken]);
      const err = await rejection(plan(h, GROUPS_YAML, 'r-callback'));
      expect(err.code).toBe('OMNI_PLUGIN_FAILED');
      expect(err.exitCode).toBe(2);
      expect(err.context).toMatchObject({ plugin: 'broken-stage-type' });
      expect(err.context.stage_id).toBeTypeOf('number');
      expect(err.context.hook).toContain(callback.replace('engine ', ''));
      expect(err.message).toContain('plugin "broken-stage-type"');
      expect(err.message).toContain(`stage ${err.context.stage_id}`);
      expect(err.message).toContain(`TypeError: ${callback} read an undefined field`);
      expect(err.message).not.toContain('bug in omnistage');
    },
  );

  it("a plugin's throwing event listener is logged as OMNI_PLUGIN_FAILED naming it; the others still get the event", async () => {
    const logged: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'warn' },
      { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const seen: string[] = [];
    const noisy = definePlugin({
      name: 'noisy-listener',
      apply(api) {
        api.events.on('pipeline:planned', () => {
          throw new RangeError('listener bug');
        });
      },
    });
    const omni = new Omnistage({ logger, lockDir: await tempDir(), plugins: [envStagePlugin(), noisy] });
    omni.events.on('pipeline:planned', (e) => seen.push(e.type));
    await planPipeline(omni, await loadPipelineConfig({ text: GROUPS_YAML }), { platform: 'cpu', env: {} });
    expect(seen).toEqual(['pipeline:planned']);
    const line = logged.find((l) => l['code'] === 'OMNI_PLUGIN_FAILED');
    expect(line).toMatchObject({ plugin: 'noisy-listener' });
    expect(String(line?.['msg'])).toContain(
      'plugin "noisy-listener" failed in an event listener (pipeline:planned): RangeError: listener bug',
    );
  });

  it('an unknown stage type is OMNI_STAGE_TYPE_UNKNOWN naming the stage, with the known types and a location', async () => {
    const h = await harness();
    const yaml = GROUPS_YAML.replace(
      'stage_type: envstage\n    runtime: { devices: "1,2" }',
      'stage_type: tts\n    runtime: { devices: "1,2" }',
    );
    const err = await rejection(plan(h, yaml, 'r-unknown'));
    expect(err.code).toBe('OMNI_STAGE_TYPE_UNKNOWN');
    expect(err.message).toContain('stage 1');
    expect(err.message).toContain('"tts"');
    expect(err.message).toContain('known: "envstage"');
    expect(err.location).toMatchObject({ line: 8, col: 17 });
    expect(err.exitCode).toBe(2);
  });
});

describe('bring-up', { timeout: 60_000 }, () => {
  it('overlapping replicas start one after another, disjoint ones concurrently; each child gets its own env', async () => {
    const h = await harness();
    const runId = 'r-groups';
    const p = await plan(h, GROUPS_YAML, runId);
    expect(p.groups.map((g) => g.replicas)).toEqual([
      [
        [0, 0],
        [1, 0],
      ],
      [[2, 0]],
      [[2, 1]],
    ]);
    // pipeline:planned tells observers each replica's devices (logical → physical) and launch group.
    expect(h.events.find((e) => e.type === 'pipeline:planned')).toMatchObject({
      replicas: 4,
      groups: 3,
      placement: [
        { stage_id: 0, replica_id: 0, devices: '0,1', physical_devices: ['0', '1'], group: 0 },
        { stage_id: 1, replica_id: 0, devices: '1,2', physical_devices: ['1', '2'], group: 0 },
        { stage_id: 2, replica_id: 0, devices: '3', physical_devices: ['3'], group: 1 },
        { stage_id: 2, replica_id: 1, devices: '4', physical_devices: ['4'], group: 2 },
      ],
    });
    const pipeline = await up(h, p, runId);
    expect(pipeline.replicas).toHaveLength(4);

    // Stages 0 and 1 (one group): stage 1 starts locking only after stage 0 is ready and its lock released.
    expect(firstTs(h.events, 'replica:phase', '1/0')).toBeGreaterThan(0);
    const s1LockStart = h.events.find(
      (e) => e.type === 'replica:phase' && key(e) === '1/0' && e.phase === 'lock' && e.status === 'start',
    )!.ts;
    expect(s1LockStart).toBeGreaterThanOrEqual(firstTs(h.events, 'replica:ready', '0/0'));
    expect(firstTs(h.events, 'lock:acquired', '1/0')).toBeGreaterThanOrEqual(firstTs(h.events, 'lock:released', '0/0'));
    // Observers are told why: at bring-up start (before stage 0 began locking) stage 1 was queued behind
    // stage 0 in group 0; the first member of each group was queued behind nobody.
    const queued = h.events.filter((e) => e.type === 'replica:queued');
    expect(queued).toEqual([
      expect.objectContaining({ stage_id: 1, replica_id: 0, group: 0, behind: { stage_id: 0, replica_id: 0 } }),
    ]);
    expect(h.events.indexOf(queued[0]!)).toBeLessThan(
      h.events.findIndex((e) => e.type === 'replica:phase' && key(e) === '0/0' && e.phase === 'lock'),
    );
    // Stage 2's replicas (own groups) held their locks while stage 0 held its own: concurrent.
    for (const k of ['2/0', '2/1']) {
      expect(firstTs(h.events, 'lock:acquired', k), k).toBeLessThan(firstTs(h.events, 'lock:released', '0/0'));
      expect(firstTs(h.events, 'lock:acquired', '0/0'), k).toBeLessThan(firstTs(h.events, 'lock:released', k));
    }

    // Every replica's environment: run, stage and replica ids, and the cpu platform's device variable.
    const envs = new Map<string, Record<string, string>>();
    for (const l of h.lines) {
      if (l.stream === 'stdout' && l.line.startsWith('ENV '))
        envs.set(key(l.replica), JSON.parse(l.line.slice(4)) as Record<string, string>);
    }
    const expected: Record<string, string> = { '0/0': '0,1', '1/0': '1,2', '2/0': '3', '2/1': '4' };
    expect([...envs.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [k, devices] of Object.entries(expected)) {
      const [stage, replica] = k.split('/');
      expect(envs.get(k), k).toMatchObject({
        OMNISTAGE_RUN_ID: runId,
        OMNISTAGE_STAGE_ID: stage,
        OMNISTAGE_REPLICA_ID: replica,
        OMNISTAGE_VISIBLE_DEVICES: devices,
      });
    }

    await pipeline.stop('done');
    expect(h.events.at(-1)?.type).toBe('pipeline:stopped');
    await expectNothingLeft(h);
  });

  it('a replica that exits before hello fails the bring-up naming it; the others are cancelled, not blamed', async () => {
    const h = await harness();
    const yaml = GROUPS_YAML.replace(
      'engine_args: { dpr: 2, delay_ms: 400 }',
      'engine_args: { dpr: 2, exit_before_hello: 7 }',
    ).replaceAll('delay_ms: 400', 'delay_ms: 20000');
    const p = await plan(h, yaml, 'r-exit');
    const err = await rejection(up(h, p, 'r-exit'));
    expect(err.code).toBe('OMNI_WORKER_EXITED');
    expect(err.context).toMatchObject({ stage_id: 0, replica_id: 0, phase: 'hello', exit_code: 7 });
    expect(err.message).toContain('exit code 7');
    expect(h.events.find((e) => e.type === 'pipeline:failed')).toMatchObject({
      code: 'OMNI_WORKER_EXITED',
      stage_id: 0,
      replica_id: 0,
      phase: 'hello',
    });
    // Stage 2's replicas were loading: each is reported cancelled under its own name.
    for (const k of ['2/0', '2/1']) {
      const failed = h.events.find((e) => e.type === 'replica:failed' && key(e) === k);
      expect(failed, k).toMatchObject({ code: 'OMNI_CANCELLED' });
      expect((failed as { message: string }).message).toContain(`stage 2 replica ${k.split('/')[1]}`);
    }
    // Stage 1 never started: its group stopped after stage 0 failed.
    expect(h.events.some((e) => e.type === 'replica:spawned' && key(e) === '1/0')).toBe(false);
    await expectNothingLeft(h);
  });

  it('init_timeout shorter than the bring-up: OMNI_INIT_TIMEOUT naming who was late, everything stopped', async () => {
    const h = await harness();
    const yaml = GROUPS_YAML.replaceAll('delay_ms: 400', 'delay_ms: 20000');
    const p = await plan(h, yaml, 'r-init');
    const t0 = Date.now();
    const err = await rejection(up(h, p, 'r-init', { initTimeoutS: 1.5 }));
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err.code).toBe('OMNI_INIT_TIMEOUT');
    expect(err.message).toContain('init_timeout');
    expect(err.message).toMatch(/stage [02] replica [01]/);
    expect(err.context.stage_id).toBeTypeOf('number');
    expect(err.context.phase).toBeTypeOf('string');
    expect(h.events.find((e) => e.type === 'pipeline:failed')).toMatchObject({ code: 'OMNI_INIT_TIMEOUT' });
    await expectNothingLeft(h);
  });

  it.runIf(process.platform === 'linux')(
    'an unusable lock dir fails the bring-up promptly instead of hanging',
    async () => {
      // Node's recursive mkdir never settles under /proc; the lock phase must not hang on it.
      const omni = new Omnistage({ lockDir: '/proc/omnistage-no-such-dir/locks', plugins: [envStagePlugin()] });
      const h: Harness = { omni, events: [], lockDir: '', lines: [] };
      omni.events.onAny((e) => h.events.push(e));
      const p = await plan(h, GROUPS_YAML, 'r-lockdir');
      const t0 = Date.now();
      const err = await rejection(up(h, p, 'r-lockdir'));
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(err.code).toBe('OMNI_LOCK_TIMEOUT');
      expect(err.message).toContain('/proc/omnistage-no-such-dir/locks');
      expect(h.events.some((e) => e.type === 'replica:spawned')).toBe(false);
      expect(h.events.at(-1)?.type).toBe('pipeline:failed');
    },
  );

  it('a replica waiting for a device held by another run reports lock:waiting with the holder', async () => {
    const a = await harness();
    const yaml = `
stage_args:
  - stage_id: 0
    stage_type: envstage
    runtime: { devices: "0" }
    engine_args: { delay_ms: 1500 }
`;
    const b = await harness();
    // Both runs share one lock dir, as every omnistage on a host does.
    const shared = new Omnistage({ lockDir: a.lockDir, plugins: [envStagePlugin()] });
    b.omni = shared;
    shared.events.onAny((e) => {
      b.events.push(e);
      if (e.type === 'replica:spawned') trackPid(e.pid);
    });
    const pa = await plan(a, yaml, 'run-a');
    const pb = await plan(b, yaml, 'run-b');
    const upA = up(a, pa, 'run-a');
    await waitFor(() => a.events.some((e) => e.type === 'lock:acquired'), 10_000);
    const upB = up(b, pb, 'run-b');
    await Promise.all([upA, upB]);
    const waiting = b.events.find((e) => e.type === 'lock:waiting');
    expect(waiting).toMatchObject({
      device: '0',
      stage_id: 0,
      replica_id: 0,
      holder: { pid: process.pid, run_id: 'run-a', stage_id: 0, replica_id: 0 },
    });
    expect(firstTs(b.events, 'lock:acquired', '0/0')).toBeGreaterThanOrEqual(firstTs(a.events, 'lock:released', '0/0'));
  });
});

/** What a third-party plugin's taps of the start sequence saw, in the order they ran. */
interface TapRecord {
  hook: 'planned' | 'lockDevices' | 'spawn' | 'attach' | 'release';
  stage_id?: number;
  replica_id?: number;
  run_id?: string;
  detail?: unknown;
}

/** Taps `planned`, `lockDevices`, `spawn` and `attach` (before core's taps); `ownLocks` answers lockDevices itself. */
function tapRecorder(records: TapRecord[], ownLocks: boolean): OmnistagePlugin {
  return definePlugin({
    name: 'tap-recorder',
    apply(api) {
      api.hooks.planned.tap('tap-recorder', (p) =>
        records.push({ hook: 'planned', run_id: p.run_id, detail: p.stages.length }),
      );
      api.hooks.lockDevices.tapPromise({ name: 'tap-recorder', stage: STAGE_USER }, async (rt) => {
        const { stage_id, replica_id } = rt.replica;
        records.push({ hook: 'lockDevices', stage_id, replica_id, run_id: rt.runId, detail: rt.lockDir });
        if (!ownLocks) return undefined;
        return {
          devices: [...rt.replica.lock_devices],
          release: async () => void records.push({ hook: 'release', stage_id, replica_id }),
        };
      });
      api.hooks.spawn.tapPromise({ name: 'tap-recorder', stage: STAGE_USER }, async (worker, rt) => {
        const { stage_id, replica_id } = rt.replica;
        records.push({ hook: 'spawn', stage_id, replica_id, detail: Object.keys(worker.env).sort() });
        return undefined;
      });
      api.hooks.attach.tapPromise({ name: 'tap-recorder', stage: STAGE_USER }, async (proc, rt) => {
        const { stage_id, replica_id } = rt.replica;
        records.push({ hook: 'attach', stage_id, replica_id, detail: proc.pid });
        return undefined;
      });
    },
  });
}

describe("a plugin's taps of the start sequence", { timeout: 60_000 }, () => {
  const yaml = `
stage_args:
  - stage_id: 0
    stage_type: envstage
    runtime: { devices: "0" }
  - stage_id: 1
    stage_type: envstage
    runtime: { devices: "1" }
    engine_input_source: [0]
    final_output: true
`;

  it('planned, lockDevices, spawn and attach run through the driver, in order, before core answers', async () => {
    const records: TapRecord[] = [];
    const h = await harness([envStagePlugin(), tapRecorder(records, false)]);
    const p = await plan(h, yaml, 'r-taps');
    expect(records).toEqual([{ hook: 'planned', run_id: 'r-taps', detail: 2 }]);
    const pipeline = await up(h, p, 'r-taps');
    for (const k of ['0/0', '1/0']) {
      const mine = records.filter((r) => r.hook !== 'planned' && `${r.stage_id}/${r.replica_id}` === k);
      expect(
        mine.map((r) => r.hook),
        k,
      ).toEqual(['lockDevices', 'spawn', 'attach']);
      expect(mine[0]).toMatchObject({ run_id: 'r-taps', detail: h.lockDir });
      // The spawn tap saw the worker as it is started: announced to the control socket, with its token.
      expect(mine[1]!.detail).toEqual(expect.arrayContaining(['OMNISTAGE_CONTROL', 'OMNISTAGE_TOKEN']));
      // The attach tap got the process core's spawn started (no tap of the plugin answered).
      const spawned = h.events.find((e) => e.type === 'replica:spawned' && key(e) === k) as { pid: number };
      expect(mine[2]!.detail, k).toBe(spawned.pid);
      // Core's lock answered after the plugin's tap passed: the device lock was taken.
      expect(h.events.some((e) => e.type === 'lock:acquired' && key(e) === k)).toBe(true);
    }
    await pipeline.stop('done');
    await expectNothingLeft(h);
  });

  it("a plugin's lockDevices tap that answers replaces core's locks, and is released once the replica attached", async () => {
    const records: TapRecord[] = [];
    const h = await harness([envStagePlugin(), tapRecorder(records, true)]);
    const pipeline = await up(h, await plan(h, yaml, 'r-own-locks'), 'r-own-locks');
    expect(h.events.some((e) => e.type === 'lock:acquired')).toBe(false);
    for (const k of ['0/0', '1/0']) {
      const mine = records.filter((r) => `${r.stage_id}/${r.replica_id}` === k).map((r) => r.hook);
      expect(mine, k).toEqual(['lockDevices', 'spawn', 'attach', 'release']);
      const released = records.findIndex((r) => r.hook === 'release' && `${r.stage_id}/${r.replica_id}` === k);
      expect(released).toBeGreaterThan(
        records.findIndex((r) => r.hook === 'attach' && `${r.stage_id}/${r.replica_id}` === k),
      );
    }
    await pipeline.stop('done');
    await expectNothingLeft(h);
  });
});
