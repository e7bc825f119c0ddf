import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PipelineRouter } from '../../src/orchestrate/router.js';
import { bringUpFixture, releaseAll, textOf, type UpPipeline } from './router-helpers.js';

/** One stage, two replicas, 20 ms a token (fixtures/two-replicas.yaml). */
let up: UpPipeline;
beforeAll(async () => {
  up = await bringUpFixture('two-replicas.yaml');
}, 60_000);
afterAll(() => releaseAll(), 30_000);

/** The most requests each replica had at once, from the dispatch and stage-end events. */
function peakInflight(requestIds: Set<string>): Map<number, number> {
  const now = new Map<number, number>();
  const peak = new Map<number, number>();
  for (const e of up.events) {
    if ((e.type !== 'request:dispatched' && e.type !== 'request:stage_end') || !requestIds.has(e.request_id)) continue;
    const n = (now.get(e.replica_id) ?? 0) + (e.type === 'request:dispatched' ? 1 : -1);
    now.set(e.replica_id, n);
    peak.set(e.replica_id, Math.max(peak.get(e.replica_id) ?? 0, n));
  }
  return peak;
}

describe('router: admission', () => {
  it('sends a replica at most maxInflightPerReplica requests at once and queues the rest, in order', async () => {
    const router = new PipelineRouter(up.omni, up.pipeline, { maxInflightPerReplica: 2 });
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
    const order = up.events.flatMap((e) => (e.type === 'request:dispatched' && ids.includes(e.request_id) ? [e.request_id] : []));
    expect(order).toEqual(ids);
  }, 60_000);

  it('a request aborted while it waits in the queue leaves it without ever being dispatched', async () => {
    const router = new PipelineRouter(up.omni, up.pipeline, { maxInflightPerReplica: 1 });
    const busy = ['adm-b0', 'adm-b1'].map((id) => router.complete(`busy ${id}`, { requestId: id, params: { 0: { max_tokens: 20, temperature: 0 } } }));
    const stop = new AbortController();
    const waiting = router.complete('never sent', { requestId: 'adm-w', signal: stop.signal });
    stop.abort(new Error('gave up waiting'));
    await expect(waiting).rejects.toThrow();
    await Promise.all(busy);
    expect(up.events.some((e) => e.type === 'request:dispatched' && e.request_id === 'adm-w')).toBe(false);
  }, 60_000);
});
