/**
 * Bounds the generation requests in flight (`--max-inflight`): a request over the bound is
 * refused at once (429), never queued, and drain waits on the count reaching zero.
 */
export class Admission {
  readonly max: number;
  #inflight = 0;
  #idle: (() => void)[] = [];

  constructor(max: number) {
    this.max = max;
  }

  get inflight(): number {
    return this.#inflight;
  }

  /** Counts a request in; false when the bound is reached. */
  tryEnter(): boolean {
    if (this.#inflight >= this.max) return false;
    this.#inflight++;
    return true;
  }

  leave(): void {
    this.#inflight--;
    if (this.#inflight === 0) for (const wake of this.#idle.splice(0)) wake();
  }

  /** Resolves when no request is in flight. */
  idle(): Promise<void> {
    return this.#inflight === 0 ? Promise.resolve() : new Promise((resolve) => this.#idle.push(resolve));
  }
}
