import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PayloadRef } from '../../src/connectors/payload-ref.js';
import { PayloadTracker, stageHolder, USER_HOLDER, type PayloadEvent } from '../../src/connectors/payload-tracker.js';
import { RouterPayloads } from '../../src/connectors/router-payloads.js';
import { payloadPath, writePayload } from '../../src/connectors/shm-store.js';
import type { StagePlan } from '../../src/planning/types.js';

let dir: string;
const trackers: PayloadTracker[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omni-tracker-test-'));
});
afterEach(async () => {
  for (const t of trackers.splice(0)) await t.close();
  await rm(dir, { recursive: true, force: true });
});

function tracker(runId = `run${trackers.length}`): PayloadTracker {
  const t = new PayloadTracker(runId, { dir });
  trackers.push(t);
  return t;
}

/** Writes a payload file as a producer would and returns its reference. */
function put(t: PayloadTracker, key: string, bytes = Buffer.from(`bytes of ${key}`)): PayloadRef {
  writePayload(t.runId, key, bytes, dir);
  return { $payload: 1, key, size: bytes.length, via: 'shm' };
}

const exists = (t: PayloadTracker, key: string): boolean => existsSync(payloadPath(t.runId, key, dir));

describe('PayloadTracker', () => {
  it('keeps a file while it is in flight and deletes it when its consumer acknowledges', async () => {
    const t = tracker();
    const ref = put(t, 'k1');
    t.register(ref, [stageHolder(1)], 'r1');
    expect(exists(t, 'k1')).toBe(true);
    expect(t.release('k1', stageHolder(2))).toBe(false); // not a holder: nothing happens
    expect(exists(t, 'k1')).toBe(true);
    expect(t.release('k1', stageHolder(1))).toBe(true);
    await t.settled();
    expect(exists(t, 'k1')).toBe(false);
    expect(t.keys).toEqual([]);
  });

  it('counts two consumers: the file goes with the second acknowledgement, a repeated ack counts once', async () => {
    const t = tracker();
    t.register(put(t, 'k2'), [stageHolder(1), stageHolder(2)], 'r1');
    expect(t.holdersOf('k2').sort()).toEqual(['stage:1', 'stage:2']);
    t.release('k2', stageHolder(1));
    t.release('k2', stageHolder(1));
    await t.settled();
    expect(exists(t, 'k2')).toBe(true);
    t.release('k2', stageHolder(2));
    await t.settled();
    expect(exists(t, 'k2')).toBe(false);
  });

  it('deletes a payload nobody holds at once, ignores inline refs', async () => {
    const t = tracker();
    t.register(put(t, 'k3'), [], 'r1');
    await t.settled();
    expect(exists(t, 'k3')).toBe(false);
    t.register({ $payload: 1, key: 'i_00', size: 1, via: 'inline', data_base64: 'AA==' }, [stageHolder(1)]);
    expect(t.keys).toEqual([]);
  });

  it("releases a request's payloads when it ends, whoever still holds them", async () => {
    const t = tracker();
    t.register(put(t, 'a'), [stageHolder(1)], 'r1');
    t.register(put(t, 'b'), [stageHolder(1)], 'r2');
    t.releaseRequest('r1');
    await t.settled();
    expect(exists(t, 'a')).toBe(false);
    expect(exists(t, 'b')).toBe(true);
  });

  it("resolves a final output's shm refs to inline bytes for the user and releases the user's hold", async () => {
    const t = tracker();
    const ref = { ...put(t, 'img', Buffer.from('PNG...')), mime: 'image/png' };
    const data = { kind: 'image', width: 1, ...ref };
    t.register(ref, [USER_HOLDER, stageHolder(3)], 'r1');
    const out = (await t.resolveForUser(data)) as Record<string, unknown>;
    expect(out).toMatchObject({
      kind: 'image',
      width: 1,
      mime: 'image/png',
      via: 'inline',
      key: 'img',
      data_base64: Buffer.from('PNG...').toString('base64'),
    });
    expect(t.holdersOf('img')).toEqual(['stage:3']); // the downstream stage still reads it
    expect(exists(t, 'img')).toBe(true);
    const plain = { text: 'no payload' };
    expect(await t.resolveForUser(plain)).toBe(plain);
  });

  it('sweeps every file of the run at teardown, tracked or never announced (e.g. after a failure)', async () => {
    const t = tracker('run-failed');
    t.register(put(t, 'held'), [stageHolder(1)], 'r1'); // its consumer died: never acknowledged
    put(t, 'orphan'); // written by a producer whose output never arrived
    const other = tracker('run-other');
    put(other, 'keep');
    expect(await t.close()).toBe(2);
    expect(readdirSync(dir)).toEqual(['omnistage-run-other-keep']);
    // After close, a late registration deletes its file at once.
    t.register(put(t, 'late'), [stageHolder(1)], 'r1');
    expect(exists(t, 'late')).toBe(false);
  });

  it('reports each payload it holds, when and why it is freed, and what teardown swept', async () => {
    const events: PayloadEvent[] = [];
    const t = new PayloadTracker('run-events', { dir, onEvent: (e) => events.push(e) });
    trackers.push(t);
    const acked = put(t, 'acked');
    t.register(acked, [stageHolder(1), USER_HOLDER], 'r1', 0);
    t.register(acked, [stageHolder(3)], 'r1', 0); // seen again: holds add up, stored once
    t.release('acked', stageHolder(3));
    t.release('acked', stageHolder(1));
    t.release('acked', USER_HOLDER);
    t.register(put(t, 'ended'), [stageHolder(2)], 'r2', 1);
    t.releaseRequest('r2');
    t.register(put(t, 'nobody'), [], 'r3', 1);
    t.register(put(t, 'left'), [stageHolder(2)], 'r4', 1);
    put(t, 'stray');
    await t.close();
    expect(events).toEqual([
      {
        type: 'payload:stored',
        key: 'acked',
        via: 'shm',
        size: 14,
        stage_id: 0,
        request_id: 'r1',
        holders: ['stage:1', 'user'],
      },
      { type: 'payload:freed', key: 'acked', via: 'shm', reason: 'acknowledged' },
      {
        type: 'payload:stored',
        key: 'ended',
        via: 'shm',
        size: 14,
        stage_id: 1,
        request_id: 'r2',
        holders: ['stage:2'],
      },
      { type: 'payload:freed', key: 'ended', via: 'shm', reason: 'request_ended' },
      { type: 'payload:stored', key: 'nobody', via: 'shm', size: 15, stage_id: 1, request_id: 'r3', holders: [] },
      { type: 'payload:freed', key: 'nobody', via: 'shm', reason: 'unheld' },
      {
        type: 'payload:stored',
        key: 'left',
        via: 'shm',
        size: 13,
        stage_id: 1,
        request_id: 'r4',
        holders: ['stage:2'],
      },
      { type: 'payload:freed', key: 'left', via: 'shm', reason: 'teardown' },
      { type: 'payload:swept', files: 2 }, // 'left' and 'stray'
    ]);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('RouterPayloads', () => {
  const stage = (stage_id: number, sources: number[]): StagePlan =>
    ({ stage_id, stage: { engine_input_source: sources }, replicas: [] }) as unknown as StagePlan;
  // 0 → 1, 0 → 2, 1 → 3
  const stages = [stage(0, []), stage(1, [0]), stage(2, [0]), stage(3, [1])];

  it('holds a last chunk for every downstream stage (+ the user for a final output stage)', async () => {
    const t = tracker();
    const r = new RouterPayloads(t, stages);
    const ref = put(t, 'lat');
    const data = { text: 'x', tensor: ref };
    expect(await r.onOutput(0, data, true, false, 'r1')).toBe(data);
    expect(t.holdersOf('lat').sort()).toEqual(['stage:1', 'stage:2']);
    const ref2 = put(t, 'fin');
    const user = (await r.onOutput(1, { tensor: ref2 }, true, true, 'r1')) as { tensor: PayloadRef };
    expect(user.tensor.via).toBe('inline');
    expect(t.holdersOf('fin')).toEqual(['stage:3']);
  });

  it('holds an earlier chunk only for the user; aborted requests hold nothing', async () => {
    const t = tracker();
    const r = new RouterPayloads(t, stages);
    await r.onOutput(0, { tensor: put(t, 'part') }, false, false, 'r1');
    const aborted = new AbortController();
    aborted.abort();
    await r.onOutput(0, { tensor: put(t, 'late') }, true, false, 'r1', aborted.signal);
    await t.settled();
    expect(exists(t, 'part')).toBe(false);
    expect(exists(t, 'late')).toBe(false);
    r.endRequest('r1');
  });
});
