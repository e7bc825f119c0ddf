/**
 * The timeline plugin (examples/third-party-plugin), beyond its README run: the axis tick
 * computation, a replica that waits for a device lock held by another run (a real lock in a real lock
 * dir, a real `omnistage run`), and logical → physical device labels as `pipeline:planned` says.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { acquireDeviceLocks } from '@omnistage/core/runtime';
import type { OmniEvent } from '@omnistage/core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { axisTicks, renderTimeline, timelineModel } from 'omnistage-plugin-timeline';
import {
  REPO_ROOT,
  createSandbox,
  eventSchemaProblems,
  onCleanup,
  readEvents,
  requireBuiltCli,
  runCleanups,
  startCli,
} from './helpers.js';
import { labelMs, pageProblems, readTimelinePage } from './timeline-page.js';

const PLUGIN = join(REPO_ROOT, 'examples', 'third-party-plugin');

beforeAll(requireBuiltCli);
afterEach(runCleanups);

describe('axisTicks', () => {
  it('steps of 1, 2 or 5 × 10^k cover the span from 0 in 3 to 6 steps, labelled in ms, or s from a second on', () => {
    for (const span of [0, 0.3, 1, 7, 42, 99, 100, 101, 692, 950, 1000, 1234, 4321, 61_000, 3_600_000]) {
      const axis = axisTicks(span);
      const mantissa = axis.step / 10 ** Math.floor(Math.log10(axis.step) + 1e-9);
      expect(
        [1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-9),
        `span ${span}: step ${axis.step}`,
      ).toBe(true);
      expect(axis.ticks[0]).toEqual({ ms: 0, label: axis.end >= 1000 ? '0 s' : '0 ms' });
      expect(axis.ticks.at(-1)!.ms, `span ${span}`).toBeCloseTo(axis.end, 9);
      expect(axis.end, `span ${span}`).toBeGreaterThanOrEqual(span);
      expect(axis.end - axis.step, `span ${span}: one step too many`).toBeLessThan(span > 0 ? span : 1);
      expect(axis.ticks.length, `span ${span}`).toBeGreaterThanOrEqual(4);
      expect(axis.ticks.length, `span ${span}`).toBeLessThanOrEqual(7);
      for (const [i, t] of axis.ticks.entries()) {
        expect(t.ms, `span ${span}`).toBeCloseTo(i * axis.step, 9);
        expect(t.label, `span ${span}`).toMatch(axis.end >= 1000 ? / s$/ : / ms$/);
        expect(labelMs(t.label), `span ${span}: ${t.label}`).toBeCloseTo(t.ms, 6);
      }
    }
  });

  it('gives the ticks a person would draw', () => {
    expect(axisTicks(692).ticks.map((t) => t.label)).toEqual(['0 ms', '200 ms', '400 ms', '600 ms', '800 ms']);
    expect(axisTicks(7).ticks.map((t) => t.label)).toEqual(['0 ms', '2 ms', '4 ms', '6 ms', '8 ms']);
    expect(axisTicks(1234).ticks.map((t) => t.label)).toEqual(['0 s', '0.5 s', '1 s', '1.5 s']);
    expect(axisTicks(0.3).ticks.map((t) => t.label)).toEqual([
      '0 ms',
      '0.05 ms',
      '0.1 ms',
      '0.15 ms',
      '0.2 ms',
      '0.25 ms',
      '0.3 ms',
    ]);
    expect(axisTicks(61_000).ticks.map((t) => t.label)).toEqual(['0 s', '20 s', '40 s', '60 s', '80 s']);
  });
});

describe('the timeline of a real run', { timeout: 120_000 }, () => {
  it('a replica that waited for a device lock held by another run says which device and who held it', async () => {
    const box = await createSandbox();
    // Another "run" (this test) holds device 1, which stage 0 replica 1 needs.
    const held = await acquireDeviceLocks({
      lockDir: box.lockDir,
      devices: ['1'],
      holder: { run_id: 'holding-run', stage_id: 7, replica_id: 3 },
      signal: new AbortController().signal,
      deadline: Date.now() + 60_000,
    });
    onCleanup(() => held.release());
    // The example pipeline, writing its page into the sandbox (the plugin by path: a plugin file anywhere).
    const yaml = readFileSync(join(PLUGIN, 'pipeline.yaml'), 'utf8').replace(
      'name: omnistage-plugin-timeline',
      `name: ${join(PLUGIN, 'index.js')}`,
    );
    const pipeline = join(box.root, 'pipeline.yaml');
    writeFileSync(pipeline, yaml);
    const events = box.eventsFile('timeline');
    const run = startCli(
      [
        'run',
        pipeline,
        '--platform',
        'cpu',
        '--input',
        'a short poem',
        '--out',
        join(box.root, 'out'),
        '--lock-dir',
        box.lockDir,
        '--events',
        events,
      ],
      { tmpDir: box.tmp },
    );
    await run.waitForEvent((e) => e.type === 'lock:waiting' && e['device'] === '1');
    // Stage 0 replica 0 comes up meanwhile: the wait is real and long enough to show.
    await run.waitForEvent((e) => e.type === 'replica:ready' && e['stage_id'] === 0 && e['replica_id'] === 0);
    await held.release();
    expect(await run.waitExit(60_000), run.describe()).toEqual({ code: 0, signal: null });
    expect(eventSchemaProblems(readEvents(events, true))).toEqual([]);

    const page = readTimelinePage(readFileSync(join(box.root, 'out', 'timeline.html'), 'utf8'));
    expect(pageProblems(page)).toEqual([]);
    const row = page.svg.rows.find((r) => r.key === '0/1')!;
    const holder = `stage 7 replica 3 of run holding-run (pid ${process.pid} on ${hostname()})`;
    expect(row.texts['why']).toMatch(
      new RegExp(`^late: waited \\d+ ms for the lock on device 1, held by ${holder.replace(/[()]/g, '\\$&')}$`),
    );
    const wait = row.bars.find((b) => b.kind === 'locks')!;
    const lock = row.bars.find((b) => b.kind === 'lock')!;
    // The lock wait lies inside the lock phase, and ends after stage 0 replica 0 was ready.
    expect(wait.x).toBeGreaterThanOrEqual(lock.x - 0.5);
    expect(wait.x + wait.width).toBeLessThanOrEqual(lock.x + lock.width + 0.5);
    const table = (key: string) => page.table.rows[page.table.rowKeys.indexOf(key)]!;
    expect(labelMs(table('0/1')['Ready']!)).toBeGreaterThan(labelMs(table('0/0')['Ready']!));
    expect(table('0/1')['Why late']).toBe(row.texts['why']!.replace(/^late: /, ''));
    // Stage 1 waited for its group, not for a lock.
    expect(page.svg.rows.find((r) => r.key === '1/0')!.texts['why']).toMatch(
      /^late: waited \d+ ms for launch group 0: stage 0 replica 0 had to be ready first$/,
    );
  });
});

describe('timelineModel', () => {
  it('labels devices logical → physical as pipeline:planned says, and a holder of this run by its replica', () => {
    const at = (ts: number, e: Record<string, unknown>) =>
      ({ ts: 1_000 + ts, run_id: 'r1', ...e }) as unknown as OmniEvent;
    const phase = (ts: number, stage_id: number, p: string, status: string) =>
      at(ts, { type: 'replica:phase', stage_id, replica_id: 0, phase: p, status });
    const events = [
      // As on a machine with CUDA_VISIBLE_DEVICES=5,6: logical 0 is physical 5, logical 0,1 are 5,6.
      at(0, {
        type: 'pipeline:planned',
        replicas: 2,
        groups: 2,
        placement: [
          { stage_id: 0, replica_id: 0, devices: '0,1', physical_devices: ['5', '6'], group: 0 },
          { stage_id: 1, replica_id: 0, devices: null, physical_devices: ['5', '6'], group: 1 },
        ],
      }),
      phase(1, 0, 'lock', 'start'),
      phase(1, 1, 'lock', 'start'),
      // First told before the holder file could be read, then again naming the holder.
      at(2, { type: 'lock:waiting', stage_id: 1, replica_id: 0, device: '5', holder: null }),
      at(3, {
        type: 'lock:waiting',
        stage_id: 1,
        replica_id: 0,
        device: '5',
        holder: { pid: 1, host: 'h', run_id: 'r1', stage_id: 0, replica_id: 0, since: '' },
      }),
      phase(3, 0, 'lock', 'end'),
      phase(3, 0, 'spawn', 'start'),
      phase(5, 0, 'spawn', 'end'),
      phase(5, 0, 'attach', 'start'),
      phase(40, 0, 'attach', 'end'),
      at(40, { type: 'replica:ready', stage_id: 0, replica_id: 0, pid: 10, duration_ms: 39 }),
      at(41, { type: 'lock:acquired', stage_id: 1, replica_id: 0, device: '5', pid: 2 }),
      phase(42, 1, 'lock', 'end'),
      phase(42, 1, 'spawn', 'start'),
      phase(44, 1, 'spawn', 'end'),
      phase(44, 1, 'attach', 'start'),
      at(60, {
        type: 'replica:failed',
        stage_id: 1,
        replica_id: 0,
        phase: 'attach',
        code: 'OMNI_WORKER_EXITED',
        message: 'exit 7',
      }),
    ];
    const model = timelineModel(events);
    expect(model.rows.map((r) => [r.stage_id, r.group, r.devices, r.physical_devices])).toEqual([
      [0, 0, '0,1', ['5', '6']],
      [1, 1, null, ['5', '6']],
    ]);
    expect(model.rows[1]!.waits).toEqual([expect.objectContaining({ kind: 'locks', device: '5', start: 2, end: 41 })]);
    expect(model.rows[1]!.why).toBe('waited 39 ms for the lock on device 5, held by stage 0 replica 0 of this run');
    const page = readTimelinePage(renderTimeline(model, 'a run <on "GPUs">'));
    expect(pageProblems(page)).toEqual([]);
    expect(page.title).toBe('a run <on "GPUs">');
    expect(page.svg.rows.map((r) => r.texts['devices'])).toEqual(['devices 0,1 → 5,6', 'devices all visible → 5,6']);
    // The failed replica's attach bar ends with the last event; the table says it failed.
    const table = page.table.rows[1]!;
    expect(table['Ready']).toBe('failed (OMNI_WORKER_EXITED)');
    expect(table['Attach']).toBe('16 ms');
  });
});
