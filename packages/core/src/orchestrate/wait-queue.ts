import { toOmniError } from '../errors.js';

/**
 * Requests waiting for room, first come first served. A waiter whose signal aborts leaves the
 * queue at once and rejects with the abort's reason; nothing polls.
 */
export class WaitQueue {
  readonly #waiters: { wake: () => void }[] = [];

  get length(): number {
    return this.#waiters.length;
  }

  /**
   * Resolves when {@link wakeOne} picks this waiter. `first` puts it at the head: a waiter that was
   * woken but lost the room to a newcomer keeps its place.
   */
  wait(signal: AbortSignal, first = false): Promise<void> {
    if (signal.aborted) return Promise.reject(toOmniError(signal.reason, 'OMNI_CANCELLED'));
    return new Promise((resolve, reject) => {
      const waiter = {
        wake: (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(toOmniError(signal.reason, 'OMNI_CANCELLED'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      if (first) this.#waiters.unshift(waiter);
      else this.#waiters.push(waiter);
    });
  }

  /** Lets the longest-waiting request try again; false when nobody waits. */
  wakeOne(): boolean {
    const w = this.#waiters.shift();
    w?.wake();
    return w !== undefined;
  }
}

/**
 * At most `capacity()` holders at once; the rest wait in a {@link WaitQueue}. The capacity is read
 * at each try, so it may change: a smaller one admits nobody new until enough holders left, a
 * larger one lets waiters in at {@link wake}.
 */
export class Gate {
  readonly #queue = new WaitQueue();
  #held = 0;

  constructor(readonly capacity: () => number) {}

  /** Takes a place, waiting for one when the gate is full (or others already wait). */
  async acquire(signal: AbortSignal): Promise<void> {
    let woken = false;
    while (this.#held >= this.capacity() || (!woken && this.#queue.length > 0)) {
      await this.#queue.wait(signal, woken);
      woken = true;
    }
    this.#held++;
  }

  release(): void {
    this.#held--;
    this.#queue.wakeOne();
  }

  /** The capacity may have grown: lets in as many waiters as there is room for now. */
  wake(): void {
    for (let room = this.capacity() - this.#held; room > 0 && this.#queue.wakeOne(); room--);
  }
}
