import type { RestartPolicy } from '../config/types.js';

/** Delays between restarts of a crash-looping replica stop growing here (Kubernetes' CrashLoopBackOff caps at 5 min; an agent's replicas are worth retrying sooner). */
export const RESPAWN_BACKOFF_CAP_MS = 30_000;
/** A replica that stayed attached this long was healthy: its next exit starts a fresh count. */
export const RESPAWN_STABLE_MS = 30_000;

/**
 * Restart budget of one agent slot. An agent restarts a replica that exits, since keeping its
 * stage's capacity is its job, but a replica that cannot start (or dies right after attaching)
 * must not be respawned every few hundred milliseconds forever: consecutive failures wait
 * `backoff_ms` × 2^(n−1) (capped), and after `max_restarts` of them the slot is given up — but
 * only once the streak has lasted longer than `minStreakMs`: a head that died takes its replicas
 * with it and its key only expires after the lease TTL, and those failures are the head's, which
 * the agent handles on its own (it stops when the head's key stays gone).
 */
export class RespawnBackoff {
  readonly #policy: RestartPolicy;
  readonly #minStreakMs: number;
  #failures = 0;
  #streakStart = 0;

  constructor(policy: RestartPolicy, minStreakMs: number) {
    this.#policy = policy;
    this.#minStreakMs = minStreakMs;
  }

  /** Records how the last incarnation ended; `attachedMs` is how long it served (0 when it never attached). */
  record(failed: boolean, attachedMs: number): void {
    if (!failed || attachedMs >= RESPAWN_STABLE_MS) this.#failures = 0;
    if (!failed) return;
    if (this.#failures === 0) this.#streakStart = Date.now();
    this.#failures += 1;
  }

  /** Consecutive failures so far. */
  get failures(): number {
    return this.#failures;
  }

  /** True when the slot has failed more times in a row than the stage's restart budget allows. */
  get exhausted(): boolean {
    return this.#failures > this.#policy.max_restarts && Date.now() - this.#streakStart >= this.#minStreakMs;
  }

  /** How long to wait before the next start. */
  delayMs(): number {
    if (this.#failures === 0) return Math.min(this.#policy.backoff_ms, RESPAWN_BACKOFF_CAP_MS);
    return Math.min(this.#policy.backoff_ms * 2 ** (this.#failures - 1), RESPAWN_BACKOFF_CAP_MS);
  }
}
