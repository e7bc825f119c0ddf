import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ReplicaChannel } from '../../src/control/replica-channel.js';
import { isOmniError, type OmniError } from '../../src/errors.js';
import { createRouter, type PipelineOutput } from '../../src/orchestrate/router.js';
import { bringUpFixture, releaseAll, textOf, waitFor, type UpPipeline } from './router-helpers.js';

/** One stage, two replicas, 20 ms a token (fixtures/two-replicas.yaml). */
let up: UpPipeline;
beforeAll(async () => {
  up = await bringUpFixture('two-replicas.yaml');
}, 60_000);
afterAll(() => releaseAll(), 30_000);
afterEach(() => {
  vi.restoreAllMocks();
});

/** replica_id of each `request:dispatched` event of the given requests. */
function dispatchedTo(requestIds: string[]): number[] {
  return up.events
    .filter((e) => e.type === 'request:dispatched' && requestIds.includes(e.request_id))
    .map((e) => (e as { replica_id: number }).replica_id);
}

async function finalText(stream: AsyncIterable<PipelineOutput>): Promise<string> {
  let text: string | null = null;
  for await (const o of stream) if (o.kind === 'final') text = textOf(o.data);
  if (text === null) throw new Error('no final output');
  return text;
}

const count = (ids: number[], id: number): number => ids.filter((x) => x === id).length;

describe('router: balancing over replicas', () => {
  it('least-inflight spreads concurrent requests over both replicas', async () => {
    const router = createRouter(up.pipeline, { balance: 'least-inflight' });
    const ids = Array.from({ length: 6 }, (_, i) => `li-${i}`);
    await Promise.all(ids.map((id) => finalText(router.generate(`concurrent ${id}`, { requestId: id }))));
    const to = dispatchedTo(ids);
    expect(to).toHaveLength(6);
    expect([count(to, 0), count(to, 1)]).toEqual([3, 3]);
  }, 30_000);

  it('least-inflight sends new requests to the idle replica while the other one is busy', async () => {
    const router = createRouter(up.pipeline, { balance: 'least-inflight' });
    // A long request (100 tokens x 20 ms, greedy: no early end) keeps one replica busy...
    const stopLong = new AbortController();
    const long = finalText(
      router.generate('a long one', {
        requestId: 'li-long',
        signal: stopLong.signal,
        params: { 0: { max_tokens: 100, temperature: 0 } },
      }),
    );
    long.catch(() => undefined);
    await waitFor(() => dispatchedTo(['li-long']).length === 1, 5_000);
    const busy = dispatchedTo(['li-long'])[0]!;
    // ...so short requests, one after the other, all go to the other replica (round-robin would alternate).
    const shorts = ['li-s0', 'li-s1', 'li-s2'];
    for (const id of shorts)
      await finalText(router.generate(`short ${id}`, { requestId: id, params: { 0: { max_tokens: 2 } } }));
    expect(dispatchedTo(shorts)).toEqual([1 - busy, 1 - busy, 1 - busy]);
    stopLong.abort(new Error('done with it'));
    await expect(long).rejects.toMatchObject({ code: 'OMNI_CANCELLED' });
  }, 30_000);

  it('least-inflight rotates between replicas that are equally idle', async () => {
    const router = createRouter(up.pipeline, { balance: 'least-inflight' });
    const ids = ['lr-0', 'lr-1', 'lr-2', 'lr-3'];
    for (const id of ids) await finalText(router.generate(id, { requestId: id, params: { 0: { max_tokens: 1 } } }));
    const to = dispatchedTo(ids);
    expect(new Set(to)).toEqual(new Set([0, 1]));
  }, 30_000);

  it('round-robin (the default) alternates between the replicas', async () => {
    const router = createRouter(up.pipeline);
    const ids = ['rr-0', 'rr-1', 'rr-2', 'rr-3'];
    for (const id of ids) await finalText(router.generate(id, { requestId: id, params: { 0: { max_tokens: 1 } } }));
    const to = dispatchedTo(ids);
    expect(to[0]).not.toBe(to[1]);
    expect(to).toEqual([to[0], to[1], to[0], to[1]]);
  }, 30_000);
});

describe('router: aborting a request', () => {
  it('stops streaming, rejects with OMNI_CANCELLED and sends abort to the replica', async () => {
    const sent: { type: string; request_id?: string }[] = [];
    const send = ReplicaChannel.prototype.send;
    vi.spyOn(ReplicaChannel.prototype, 'send').mockImplementation(function (this: ReplicaChannel, m) {
      sent.push(m as { type: string; request_id?: string });
      return send.call(this, m);
    });
    // Lines the replicas send for this request after the abort went out.
    let abortedAt: number | null = null;
    const lateLines: string[] = [];
    const receive = ReplicaChannel.prototype.receive;
    vi.spyOn(ReplicaChannel.prototype, 'receive').mockImplementation(function (this: ReplicaChannel, line: string) {
      if (abortedAt !== null && line.includes('"ab-1:0"')) lateLines.push(line);
      return receive.call(this, line);
    });
    const abort = new AbortController();
    const seen: PipelineOutput[] = [];
    let err: unknown = null;
    const t0 = performance.now();
    try {
      // 50 tokens x 20 ms = 1 s if nobody stops it.
      for await (const o of up.router.generate('please stop me', {
        requestId: 'ab-1',
        signal: abort.signal,
        params: { 0: { max_tokens: 50, temperature: 0 } },
      })) {
        seen.push(o);
        if (seen.length === 2) {
          abort.abort(new Error('the user gave up'));
          abortedAt = performance.now();
        }
      }
    } catch (e) {
      err = e;
    }
    const elapsed = performance.now() - t0;
    expect(isOmniError(err)).toBe(true);
    expect((err as OmniError).code).toBe('OMNI_CANCELLED');
    expect(seen).toHaveLength(2);
    expect(seen.every((o) => o.kind === 'chunk')).toBe(true);
    expect(elapsed).toBeLessThan(800);
    expect(sent).toContainEqual({ type: 'abort', request_id: 'ab-1:0' });

    // The replica stopped generating: without the abort it would stream ~45 more tokens in the
    // next 900 ms; at most one line that was already on its way may still arrive.
    await new Promise((r) => setTimeout(r, 300));
    expect(lateLines.length).toBeLessThanOrEqual(1);
    expect(lateLines.some((l) => l.includes('"done":true'))).toBe(false);
    // ...and it keeps serving.
    const text = await finalText(
      up.router.generate('still alive?', { requestId: 'ab-2', params: { 0: { max_tokens: 2 } } }),
    );
    expect(text.length).toBeGreaterThan(0);
  }, 30_000);

  it('cancels the request when the consumer stops reading (break): abort goes to the replica', async () => {
    const sent: { type: string; request_id?: string }[] = [];
    const send = ReplicaChannel.prototype.send;
    vi.spyOn(ReplicaChannel.prototype, 'send').mockImplementation(function (this: ReplicaChannel, m) {
      sent.push(m as { type: string; request_id?: string });
      return send.call(this, m);
    });
    let seen = 0;
    for await (const o of up.router.generate('i will leave early', {
      requestId: 'ab-3',
      params: { 0: { max_tokens: 50, temperature: 0 } },
    })) {
      expect(o.kind).toBe('chunk');
      seen++;
      break;
    }
    expect(seen).toBe(1);
    expect(await waitFor(() => sent.some((m) => m.type === 'abort' && m.request_id === 'ab-3:0'), 2_000)).toBe(true);
  }, 30_000);

  it('rejects at once when the signal is already aborted, without dispatching', async () => {
    const abort = new AbortController();
    abort.abort(new Error('too late'));
    await expect(
      finalText(up.router.generate('never sent', { requestId: 'ab-0', signal: abort.signal })),
    ).rejects.toMatchObject({ code: 'OMNI_CANCELLED' });
    expect(dispatchedTo(['ab-0'])).toEqual([]);
  }, 10_000);
});

describe('createRouter()', () => {
  it('each router of a pipeline keeps the options it was created with', async () => {
    // Before, the pipeline made one router lazily and the options of later calls were ignored.
    const quick = createRouter(up.pipeline, { requestTimeoutMs: 1 });
    const patient = createRouter(up.pipeline);
    await expect(
      finalText(quick.generate('too slow for 1 ms', { requestId: 'cr-1', params: { 0: { max_tokens: 20 } } })),
    ).rejects.toMatchObject({ code: 'OMNI_REQUEST_TIMEOUT' });
    expect(await finalText(patient.generate('in time', { requestId: 'cr-2', params: { 0: { max_tokens: 2 } } }))).toBe(
      await finalText(up.router.generate('in time', { params: { 0: { max_tokens: 2 } } })),
    );
  }, 30_000);
});
