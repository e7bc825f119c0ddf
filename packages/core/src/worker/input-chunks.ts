/**
 * A request's input as its handler reads it: an async iterable over the chunks of a streamed input
 * (docs/protocol.md "Streamed input"), or over the one input of an ordinary request.
 *
 * Imported by the worker SDK: node built-ins and our dependency-free modules only.
 */
import type { JsonValue } from '../control/protocol.js';

/**
 * The chunks of one request's input, in order. Taking a chunk acknowledges it (`input_ack`), in
 * batches of a quarter of the window, and at once when the handler has caught up with what arrived,
 * so the orchestrator never waits on an ack the handler would only send after more input.
 */
export class InputChunks implements AsyncIterable<JsonValue> {
  readonly #items: JsonValue[] = [];
  readonly #ack: ((seq: number) => void) | null;
  readonly #ackEvery: number;
  #taken = 0;
  #acked = 0;
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;
  #iterated = false;

  /** `first` is seq 0; with `ack` the input is streamed and more chunks come through {@link push}. */
  constructor(first: JsonValue, ack: ((seq: number) => void) | null, window: number) {
    this.#items.push(first);
    this.#ack = ack;
    this.#ackEvery = Math.max(1, Math.floor(window / 4));
    if (ack === null) this.#ended = true;
  }

  push(data: JsonValue): void {
    if (this.#ended) return;
    this.#items.push(data);
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  /** The request was aborted or the worker is stopping: a waiting reader throws `error`. */
  fail(error: Error): void {
    if (this.#error === null) this.#error = error;
    this.#ended = true;
    this.#items.length = 0;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #took(): void {
    this.#taken++;
    const caughtUp = this.#items.length === 0;
    if (this.#ack !== null && (caughtUp || this.#taken - this.#acked >= this.#ackEvery) && this.#taken > this.#acked) {
      this.#acked = this.#taken;
      this.#ack(this.#taken - 1);
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<JsonValue> {
    if (this.#iterated) throw new Error('the input of a request can be iterated once');
    this.#iterated = true;
    for (;;) {
      if (this.#error !== null) throw this.#error;
      if (this.#items.length > 0) {
        const next = this.#items.shift() as JsonValue;
        this.#took();
        yield next;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
