/**
 * Rejected control connections are worth a warning (someone is probing the socket, or a replica
 * was started with the wrong token), but a flood of them must not become a flood of log lines:
 * the first rejection of an interval is said at once, the rest are counted and summed up in one
 * line when the interval ends (or when the server closes).
 */
export class RejectionLog {
  readonly #warn: (message: string) => void;
  readonly #intervalMs: number;
  #quietUntil = 0;
  #suppressed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(warn: (message: string) => void, intervalMs: number) {
    this.#warn = warn;
    this.#intervalMs = intervalMs;
  }

  rejected(reason: string): void {
    const now = Date.now();
    if (now >= this.#quietUntil && this.#suppressed === 0) {
      this.#quietUntil = now + this.#intervalMs;
      this.#say(`rejected a control connection: ${reason}`);
      return;
    }
    this.#suppressed++;
    this.#timer ??= setTimeout(() => this.flush(), Math.max(0, this.#quietUntil - now)).unref();
  }

  /** Says how many rejections were held back, if any. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#suppressed === 0) return;
    const n = this.#suppressed;
    this.#suppressed = 0;
    this.#quietUntil = Date.now() + this.#intervalMs;
    this.#say(
      `${n} more control connection${n === 1 ? '' : 's'} rejected (unknown tokens, bad or missing hello, failed TLS handshakes)`,
    );
  }

  #say(message: string): void {
    try {
      this.#warn(message);
    } catch {
      // a logger that throws must not take the control server down
    }
  }
}
