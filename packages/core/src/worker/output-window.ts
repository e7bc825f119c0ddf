/**
 * Flow control of one request's outputs (docs/protocol.md "Flow control"): with an
 * `output_window`, the worker sends at most that many `output` chunks beyond the credits the
 * orchestrator granted; the rest wait here, and `drained()` tells the handler when to go on.
 *
 * Imported by the worker SDK: node built-ins and our dependency-free modules only.
 */
import type { WorkerMessage } from '../control/protocol.js';

export class OutputWindow {
  readonly #send: (message: WorkerMessage) => boolean;
  /** Unlimited without an output window. */
  #credits: number;
  readonly #held: WorkerMessage[] = [];
  #waiters: (() => void)[] = [];
  #onLastSent: (() => void) | null = null;

  constructor(send: (message: WorkerMessage) => boolean, window: number | undefined) {
    this.#send = send;
    this.#credits = window ?? Number.POSITIVE_INFINITY;
  }

  /** Sends a partial output now, or holds it until credit comes. */
  chunk(message: WorkerMessage): void {
    if (this.#held.length === 0 && this.#credits > 0) {
      this.#credits--;
      this.#send(message);
    } else this.#held.push(message);
  }

  /** Sends the last message (the end, not counted) after whatever is held; `sent` runs once it went. */
  last(message: WorkerMessage, sent: () => void): void {
    if (this.#held.length === 0) {
      this.#send(message);
      sent();
    } else {
      this.#held.push(message);
      this.#onLastSent = sent;
    }
  }

  grant(n: number): void {
    this.#credits += n;
    while (this.#held.length > 0) {
      const next = this.#held[0]!;
      const counted = next.type === 'output' && !next.done;
      if (counted && this.#credits <= 0) break;
      if (counted) this.#credits--;
      this.#held.shift();
      this.#send(next);
    }
    if (this.#held.length === 0) {
      const sent = this.#onLastSent;
      this.#onLastSent = null;
      sent?.();
      if (this.#credits > 0) this.#release();
    }
  }

  /** Resolves when nothing is held and a chunk could go out at once. */
  drained(): Promise<void> {
    if (this.#held.length === 0 && this.#credits > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The request is over (ended, failed, aborted): held chunks are dropped, waiters go on. */
  close(): void {
    this.#held.length = 0;
    this.#onLastSent = null;
    this.#credits = Number.POSITIVE_INFINITY;
    this.#release();
  }

  #release(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
