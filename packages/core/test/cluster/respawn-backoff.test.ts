import { describe, expect, it } from 'vitest';
import { RESPAWN_BACKOFF_CAP_MS, RESPAWN_STABLE_MS, RespawnBackoff } from '../../src/cluster/respawn-backoff.js';

const policy = { policy: 'on-failure' as const, max_restarts: 3, backoff_ms: 500 };

describe('RespawnBackoff', () => {
  it('doubles the wait per failure in a row, up to the cap', () => {
    const b = new RespawnBackoff({ ...policy, max_restarts: 100 }, 0);
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) {
      b.record(true, 0);
      waits.push(b.delayMs());
    }
    expect(waits).toEqual([
      500,
      1000,
      2000,
      4000,
      8000,
      16000,
      RESPAWN_BACKOFF_CAP_MS,
      RESPAWN_BACKOFF_CAP_MS,
      RESPAWN_BACKOFF_CAP_MS,
    ]);
  });

  it('is exhausted after more than max_restarts failures in a row', () => {
    const b = new RespawnBackoff(policy, 0);
    for (let i = 0; i < 3; i++) b.record(true, 0);
    expect(b.exhausted).toBe(false);
    b.record(true, 0);
    expect(b.exhausted).toBe(true);
    expect(b.failures).toBe(4);
  });

  it('a clean end or a long healthy run starts a fresh count', () => {
    const b = new RespawnBackoff(policy, 0);
    for (let i = 0; i < 3; i++) b.record(true, 0);
    b.record(false, 0);
    expect(b.failures).toBe(0);
    expect(b.delayMs()).toBe(500);
    for (let i = 0; i < 3; i++) b.record(true, 10);
    b.record(true, RESPAWN_STABLE_MS);
    expect(b.failures).toBe(1);
    expect(b.exhausted).toBe(false);
  });

  it('does not give up before the streak outlasts minStreakMs (a dead head takes its replicas with it)', () => {
    const b = new RespawnBackoff({ ...policy, max_restarts: 0 }, 60_000);
    b.record(true, 0);
    b.record(true, 0);
    expect(b.failures).toBe(2);
    expect(b.exhausted).toBe(false);
  });
});
