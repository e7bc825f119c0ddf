/** Longest line kept for error reports; longer lines are cut (the log still gets them whole). */
const MAX_KEPT_LINE = 4_096;

/** A fixed-size ring of the most recent output lines of a replica, for error messages. */
export class LastLines {
  readonly #lines: string[] = [];
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = Math.max(0, Math.floor(capacity));
  }

  push(line: string): void {
    if (this.#capacity === 0) return;
    this.#lines.push(line.length > MAX_KEPT_LINE ? `${line.slice(0, MAX_KEPT_LINE)}…` : line);
    if (this.#lines.length > this.#capacity) this.#lines.shift();
  }

  /** Oldest first, newest last. */
  snapshot(): string[] {
    return [...this.#lines];
  }
}
