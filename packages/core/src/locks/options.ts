/**
 * The one set of proper-lockfile timings used by every omnistage process on a host.
 *
 * proper-lockfile cannot detect two holders when processes disagree on `stale`/`update`
 * (README "Compromised"), so these values are a constant of the product, never an option.
 * `stale` is how long a holder that stopped refreshing (SIGKILLed, frozen) keeps a device
 * before another acquirer may take it over; `update` is the refresh period (must be ≤ stale/2;
 * proper-lockfile clamps it to [1000, stale/2]). `realpath: false` because the target file
 * `device-<id>` is never created: only the `<file>.lock` directory is. `retries: 0` because
 * {@link acquireDeviceLocks} runs its own polling loop that honours an abort signal and a deadline.
 */
export const LOCK_OPTIONS = Object.freeze({
  stale: 10_000,
  update: 2_000,
  realpath: false,
  retries: 0,
} as const);

/** Upper bound of the pause between two attempts to take a busy device lock. */
export const LOCK_POLL_MS = 50;
