/**
 * The router's entry gate reads its capacity at each try, so admission can follow the replicas a
 * pipeline has (agents attach and detach them; docs/serving.md "Admission"). The scale-out test
 * shows it on a real head; this pins the gate's own rules.
 */
import { describe, expect, it } from 'vitest';
import { Gate } from '../../src/orchestrate/wait-queue.js';

/** Lets every promise callback queued so far run (one turn of the event loop). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('entry gate with a capacity that changes', () => {
  it('a larger capacity lets waiters in at wake(), in arrival order; a smaller one admits nobody new until enough holders left', async () => {
    let capacity = 1;
    const gate = new Gate(() => capacity);
    const signal = new AbortController().signal;
    await gate.acquire(signal);
    const admitted: number[] = [];
    const waiters = [1, 2, 3].map((i) => gate.acquire(signal).then(() => admitted.push(i)));
    await settle();
    expect(admitted).toEqual([]);

    capacity = 3; // two replicas attached
    gate.wake();
    await settle();
    expect(admitted).toEqual([1, 2]);

    capacity = 1; // they detached: three holders, room for one
    gate.release();
    await settle();
    gate.release();
    await settle();
    expect(admitted).toEqual([1, 2]);
    gate.release();
    await settle();
    expect(admitted).toEqual([1, 2, 3]);
    await Promise.all(waiters);
  });

  it('wake() with no more room lets nobody in', async () => {
    const gate = new Gate(() => 1);
    const signal = new AbortController().signal;
    await gate.acquire(signal);
    let admitted = false;
    const waiter = gate.acquire(signal).then(() => (admitted = true));
    gate.wake();
    await settle();
    expect(admitted).toBe(false);
    gate.release();
    await waiter;
    expect(admitted).toBe(true);
  });
});
