import { describe, expect, it } from 'vitest';
import { AsyncQueue } from '../../src/orchestrate/async-queue.js';

describe('AsyncQueue', () => {
  it('delivers pushed items in order, then ends', async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    setTimeout(() => {
      q.push(2);
      q.end();
      q.push(3);
    }, 5);
    const got: number[] = [];
    for await (const x of q) got.push(x);
    expect(got).toEqual([1, 2]);
  });

  it('throws the failure after the items queued before it', async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    q.fail(new Error('boom'));
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const x of q) got.push(x);
      })(),
    ).rejects.toThrow('boom');
    expect(got).toEqual([1]);
  });

  it('tells the producer once when the consumer stops early, and not when it read to the end', async () => {
    let abandoned = 0;
    const q = new AsyncQueue<number>(() => abandoned++);
    q.push(1);
    q.push(2);
    for await (const x of q) {
      expect(x).toBe(1);
      break;
    }
    expect(abandoned).toBe(1);
    q.push(3);
    q.end();
    expect(abandoned).toBe(1);

    let abandoned2 = 0;
    const full = new AsyncQueue<number>(() => abandoned2++);
    full.push(1);
    full.end();
    for await (const x of full) expect(x).toBe(1);
    expect(abandoned2).toBe(0);
  });
});
