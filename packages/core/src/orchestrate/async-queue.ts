/**
 * A push-based async iterable: producers `push` and finally `end` or `fail`; one consumer iterates.
 * Used to merge the outputs of several stages of one request into one stream. A consumer that
 * stops early (`break`, `return`, a throw in its loop body) calls `onAbandon` once, so the
 * producer can stop the work nobody reads any more; later pushes are dropped.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  readonly #onAbandon: (() => void) | null;
  #error: unknown = null;
  #ended = false;
  #wake: (() => void) | null = null;

  constructor(onAbandon?: () => void) {
    this.#onAbandon = onAbandon ?? null;
  }

  push(item: T): void {
    if (this.#ended) return;
    this.#items.push(item);
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  fail(error: unknown): void {
    if (this.#ended) return;
    this.#error = error;
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    let drained = false;
    try {
      for (;;) {
        const next = this.#items.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.#ended) {
          drained = true;
          if (this.#error !== null) throw this.#error;
          return;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
    } finally {
      if (!drained) {
        // The consumer left before the end: drop what is queued and tell the producer.
        const wasEnded = this.#ended;
        this.#ended = true;
        this.#items.length = 0;
        if (!wasEnded) this.#onAbandon?.();
      }
    }
  }
}
