import { afterAll, describe, expect, it } from 'vitest';
import { isOmniError } from '../../src/errors.js';
import type { OmniEvent } from '../../src/events/types.js';
import { createRouter } from '../../src/orchestrate/router.js';
import { bringUpFixture, releaseAll, textOf, waitFor } from './router-helpers.js';

afterAll(() => releaseAll(), 30_000);

const unresponsive = (events: OmniEvent[]): OmniEvent[] => events.filter((e) => e.type === 'replica:unresponsive');

describe('liveness: a replica that stops answering leaves the rotation', () => {
  it('a SIGSTOPped replica is declared unresponsive, its request is retried on the other replica, and new requests avoid it', async () => {
    // Heartbeats every 100 ms, declared dead after 1.5 s of silence: the stopped process says nothing.
    const up = await bringUpFixture('two-replicas.yaml', {
      bringUp: { liveness: { heartbeatMs: 100, timeoutMs: 1_500 } },
    });
    const router = createRouter(up.pipeline);
    // A long request lands on one replica, then that replica is frozen.
    const long = router.complete('frozen mid-request', { requestId: 'lv-long', params: { 0: { max_tokens: 40 } } });
    long.catch(() => undefined);
    await waitFor(() => up.events.some((e) => e.type === 'request:dispatched' && e.request_id === 'lv-long'), 10_000);
    const first = up.events.find((e) => e.type === 'request:dispatched' && e.request_id === 'lv-long') as {
      replica_id: number;
    };
    const frozen = first.replica_id;
    const other = 1 - frozen;
    const stopped = up.pipeline.replicas.find((r) => r.plan.replica_id === frozen)!;
    process.kill(stopped.process.pid, 'SIGSTOP');
    await waitFor(() => unresponsive(up.events).length > 0, 60_000);
    expect(unresponsive(up.events)[0]).toMatchObject({ stage_id: 0, replica_id: frozen, pid: stopped.process.pid });
    // The frozen request was retried on the other replica and answered.
    const finals = await long;
    expect(finals.map((f) => [f.replica_id, f.attempt])).toEqual([[other, 1]]);
    // New requests go to the live replica only.
    for (const id of ['lv-a', 'lv-b', 'lv-c']) {
      const [out] = await router.complete(`after ${id}`, { requestId: id, params: { 0: { max_tokens: 2 } } });
      expect(out!.replica_id).toBe(other);
      textOf(out!.data);
    }
  }, 120_000);

  it('a replica alive but silent past its heartbeat timeout is declared unresponsive and its request fails per the restart rules', async () => {
    const up = await bringUpFixture('wedged.yaml', { bringUp: { liveness: { heartbeatMs: 100, timeoutMs: 1_500 } } });
    const replica = up.pipeline.replicas[0]!;
    const err = await createRouter(up.pipeline, { replicaWaitMs: 2_000 })
      .complete('wedge it', { requestId: 'lv-wedge' })
      .then(
        () => null,
        (e: unknown) => e,
      );
    const [event] = unresponsive(up.events);
    expect(event).toMatchObject({ stage_id: 0, replica_id: 0, pid: replica.process.pid });
    expect((event as { reason: string }).reason).toMatch(/^no heartbeat for [\d.]+ s \(timeout 1\.5 s\)$/);
    // restart: never and no other replica: the retry finds no live replica and the stage is dead.
    expect(isOmniError(err)).toBe(true);
    expect(up.events.some((e) => e.type === 'pipeline:failed' && e.stage_id === 0)).toBe(true);
  }, 120_000);

  it("the pipeline file's runtime.heartbeat_timeout_s (1 s) governs: a silent replica leaves rotation after it, not after the default 30 s", async () => {
    // No liveness options here: interval 0.1 s and timeout 1 s come from the YAML's runtime block.
    const up = await bringUpFixture('wedged-short-heartbeat.yaml');
    expect(up.plan.liveness).toEqual({ heartbeat_interval_s: 0.1, heartbeat_timeout_s: 1 });
    // The interval reached the replica (welcome.heartbeat_ms): five beats and it is still in
    // rotation. At the default 2 s, a 1 s timeout would have taken it out before the second beat.
    const beats = new Set<number>();
    const conn = up.pipeline.replicas[0]!.connection!;
    expect(await waitFor(() => (beats.add(conn.lastHeartbeat?.() ?? 0), beats.size >= 6), 15_000, 10)).toBe(true);
    expect(unresponsive(up.events)).toEqual([]);
    const err = await createRouter(up.pipeline, { replicaWaitMs: 2_000 })
      .complete('wedge it', { requestId: 'lv-yaml' })
      .then(
        () => null,
        (e: unknown) => e,
      );
    const [event] = unresponsive(up.events);
    expect((event as { reason: string }).reason).toMatch(/^no heartbeat for [\d.]+ s \(timeout 1 s\)$/);
    expect(isOmniError(err)).toBe(true);
  }, 25_000);

  it('a request past its deadline fails with OMNI_REQUEST_TIMEOUT naming the stage and replica it waited on', async () => {
    const up = await bringUpFixture('two-replicas.yaml');
    const router = createRouter(up.pipeline, { requestTimeoutMs: 300 });
    // 200 tokens at 20 ms each: far past the deadline.
    const err = await router
      .complete('too slow', { requestId: 'lv-slow', params: { 0: { max_tokens: 200, temperature: 0 } } })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(isOmniError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'OMNI_REQUEST_TIMEOUT', context: { stage_id: 0, request_id: 'lv-slow' } });
    expect((err as Error).message).toMatch(
      /request lv-slow ran past its deadline \(0\.3 s\) waiting on stage 0 replica [01] \(pid \d+\)/,
    );
  }, 60_000);
});
