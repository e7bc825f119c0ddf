import { STREAM_WINDOW } from '../control/stream-window.js';

/**
 * The chunks of one streaming edge for one request, between the router's reading of the producer
 * and the pump that sends them to the consumer. Bounded: `push` waits while `capacity` chunks wait
 * here, so a consumer that lags holds its producer back (the producer's own output window then
 * fills and it waits for credit) and the orchestrator never buffers more than the window.
 */
export class ChunkChannel<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  readonly #capacity: number;
  #ended = false;
  #error: unknown = null;
  #closed = false;
  #wakeReader: (() => void) | null = null;
  #wakeWriter: (() => void) | null = null;
  #firstChunk: Promise<boolean> | null = null;
  #resolveFirst: ((has: boolean) => void) | null = null;

  constructor(capacity = STREAM_WINDOW) {
    this.#capacity = capacity;
  }

  /** Adds a chunk once there is room; dropped when the channel is closed or failed. */
  async push(item: T): Promise<void> {
    while (this.#items.length >= this.#capacity && !this.#closed && !this.#ended) {
      await new Promise<void>((resolve) => (this.#wakeWriter = resolve));
    }
    if (this.#closed || this.#ended) return;
    this.#items.push(item);
    this.#settleFirst(true);
    this.#wake();
  }

  end(): void {
    this.#ended = true;
    this.#settleFirst(false);
    this.#wake();
  }

  /** The producer failed or the request was cancelled: the reader throws, the writer is let go. */
  fail(error: unknown): void {
    if (this.#closed) return;
    this.#error = error;
    this.#closed = true;
    this.#items.length = 0;
    this.#settleFirst(false);
    this.#wake();
  }

  /** Resolves true once a chunk is here, false when the channel ended (or failed) without one. */
  hasFirst(): Promise<boolean> {
    if (this.#items.length > 0) return Promise.resolve(true);
    if (this.#ended || this.#closed) return Promise.resolve(false);
    this.#firstChunk ??= new Promise((resolve) => (this.#resolveFirst = resolve));
    return this.#firstChunk;
  }

  /** The first chunk, taken out (call after {@link hasFirst} said there is one). */
  takeFirst(): T {
    const item = this.#items.shift() as T;
    this.#wake();
    return item;
  }

  #settleFirst(has: boolean): void {
    const resolve = this.#resolveFirst;
    this.#resolveFirst = null;
    resolve?.(has);
  }

  #wake(): void {
    const reader = this.#wakeReader;
    const writer = this.#wakeWriter;
    this.#wakeReader = null;
    this.#wakeWriter = null;
    reader?.();
    writer?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      for (;;) {
        if (this.#closed) throw this.#error;
        if (this.#items.length > 0) {
          const item = this.#items.shift() as T;
          this.#wake();
          yield item;
          continue;
        }
        if (this.#ended) return;
        await new Promise<void>((resolve) => (this.#wakeReader = resolve));
      }
    } finally {
      // A reader that leaves early lets the writer go: nobody will take its chunks.
      if (!this.#ended && !this.#closed) {
        this.#closed = true;
        this.#items.length = 0;
        this.#wake();
      }
    }
  }
}
