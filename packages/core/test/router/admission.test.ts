import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStageConfig } from '../../src/config/stage-defaults.js';
import { DEFAULT_MAX_INFLIGHT_PER_REPLICA, createRouter, maxInflightOf } from '../../src/orchestrate/router.js';
import type { StagePlan } from '../../src/planning/types.js';
import { bringUpFixture, releaseAll, textOf, type UpPipeline } from './router-helpers.js';

/** One stage, two replicas, 20 ms a token (fixtures/two-replicas.yaml). */
let up: UpPipeline;
beforeAll(async () => {
  up = await bringUpFixture('two-replicas.yaml');
}, 60_000);
afterAll(() => releaseAll(), 30_000);

/** The most requests each replica had at once, from the dispatch and stage-end events. */
function peakInflight(requestIds: Set<string>, events = up.events): Map<number, number> {
  const now = new Map<number, number>();
  const peak = new Map<number, number>();
  for (const e of events) {
    if ((e.type !== 'request:dispatched' && e.type !== 'request:stage_end') || !requestIds.has(e.request_id)) continue;
    const n = (now.get(e.replica_id) ?? 0) + (e.type === 'request:dispatched' ? 1 : -1);
    now.set(e.replica_id, n);
    peak.set(e.replica_id, Math.max(peak.get(e.replica_id) ?? 0, n));
  }
  return peak;
}

describe('router: admission', () => {
  it('sends a replica at most maxInflightPerReplica requests at once and queues the rest, in order', async () => {
    const router = createRouter(up.pipeline, { maxInflightPerReplica: 2 });
    const ids = Array.from({ length: 24 }, (_, i) => `adm-${i}`);
    const texts = await Promise.all(
      ids.map(async (id) => {
        const finals = await router.complete(`queued ${id}`, { requestId: id, params: { 0: { max_tokens: 3 } } });
        return textOf(finals[0]!.data);
      }),
    );
    expect(texts).toHaveLength(24);
    const peak = peakInflight(new Set(ids));
    expect([...peak.keys()].sort()).toEqual([0, 1]);
    for (const n of peak.values()) expect(n).toBeLessThanOrEqual(2);
    // Queued requests were let in first come, first served.
    const order = up.events.flatMap((e) =>
      e.type === 'request:dispatched' && ids.includes(e.request_id) ? [e.request_id] : [],
    );
    expect(order).toEqual(ids);
  }, 60_000);

  it('a request aborted while it waits in the queue leaves it without ever being dispatched', async () => {
    const router = createRouter(up.pipeline, { maxInflightPerReplica: 1 });
    const busy = ['adm-b0', 'adm-b1'].map((id) =>
      router.complete(`busy ${id}`, { requestId: id, params: { 0: { max_tokens: 20, temperature: 0 } } }),
    );
    const stop = new AbortController();
    const waiting = router.complete('never sent', { requestId: 'adm-w', signal: stop.signal });
    stop.abort(new Error('gave up waiting'));
    await expect(waiting).rejects.toThrow();
    await Promise.all(busy);
    expect(up.events.some((e) => e.type === 'request:dispatched' && e.request_id === 'adm-w')).toBe(false);
  }, 60_000);

  it("is on by default: a stage's runtime.max_inflight_per_replica bounds a router given no options", async () => {
    const bounded = await bringUpFixture('two-replicas-bounded.yaml');
    const router = createRouter(bounded.pipeline);
    const ids = Array.from({ length: 10 }, (_, i) => `adm-y${i}`);
    await Promise.all(
      ids.map((id) => router.complete(`yaml ${id}`, { requestId: id, params: { 0: { max_tokens: 3 } } })),
    );
    const peak = peakInflight(new Set(ids), bounded.events);
    expect([...peak.values()]).toEqual([1, 1]);
  }, 60_000);

  it("the default bound is 64 per replica, the stage's max_num_seqs when larger; the option sets it for stages that set none", () => {
    const stage = (
      runtime: { max_inflight_per_replica?: number },
      engineArgs: Record<string, unknown> = {},
    ): StagePlan =>
      ({
        stage_id: 0,
        stage: createStageConfig({ stage_id: 0, engine_args: engineArgs, runtime }),
        replicas: [],
      }) as unknown as StagePlan;
    expect(DEFAULT_MAX_INFLIGHT_PER_REPLICA).toBe(64);
    expect(maxInflightOf(stage({}))).toBe(64);
    expect(maxInflightOf(stage({}, { max_num_seqs: 8 }))).toBe(64);
    expect(maxInflightOf(stage({}, { max_num_seqs: 256 }))).toBe(256);
    expect(maxInflightOf(stage({}), 5)).toBe(5);
    expect(maxInflightOf(stage({ max_inflight_per_replica: 3 }), 5)).toBe(3);
  });
});
