import { stat } from 'node:fs/promises';
import { lock } from 'proper-lockfile';
import { isOmniError, OmniError } from '../errors.js';
import { sortDeviceIds, uniqueDeviceIds } from '../planning/device-ids.js';
import {
  currentHolder,
  describeHolder,
  readLockHolder,
  removeHolderFileAtExit,
  removeOwnLockHolder,
  writeLockHolder,
  type LockHolder,
} from './holder.js';
import { checkDeviceEntries, prepareLockDir } from './lock-dir.js';
import { LOCK_OPTIONS, LOCK_POLL_MS } from './options.js';
import { assertDeviceId, deviceLockDir, deviceLockTarget, holderFilePath } from './paths.js';
import { cancelled, LAUNCH_CANCELLED_HINT, replicaLabel } from '../error-messages.js';

/** Identifies the replica taking the locks; recorded in each holder file. */
export interface DeviceLockOwner {
  run_id: string;
  stage_id: number;
  replica_id: number;
}

/** What to lock, for whom, until when, and who to tell. */
export interface AcquireDeviceLocksOptions {
  /** Host-wide lock directory (created recursively). See `defaultLockDir()`. */
  lockDir: string;
  /** Physical device ids; sorted and de-duplicated here, whatever order they come in. */
  devices: readonly string[];
  holder: DeviceLockOwner;
  /** Aborting it stops the wait promptly with OMNI_CANCELLED and releases what was taken. */
  signal: AbortSignal;
  /** Epoch ms after which a wait fails closed with OMNI_LOCK_TIMEOUT (the replica's init deadline). */
  deadline: number;
  onAcquired?(device: string): void;
  onReleased?(device: string): void;
  /**
   * The device is locked by someone else and we are waiting for it. Called when the wait starts
   * and again whenever the recorded holder changes (e.g. its holder file appears, or another
   * process takes the device over); `holder` is null while no holder file can be read.
   */
  onWaiting?(device: string, holder: LockHolder | null): void;
  /**
   * A held lock was lost (its `.lock` directory vanished or was refreshed by someone else, e.g.
   * after the event loop stalled longer than `stale`). The caller must fail that replica's init.
   * Called from a timer: exceptions thrown here are swallowed so they cannot crash the process.
   */
  onCompromised?(device: string, err: OmniError): void;
}

/** The device locks held for one replica's initialisation. */
export interface DeviceLockSet {
  /** Devices held, in acquisition (ascending) order. */
  readonly devices: string[];
  /**
   * Removes each holder file, then the lock, in reverse order. Idempotent, and tolerates locks
   * that were already lost. Rejects (OMNI_INTERNAL) only after trying every device, if some lock
   * directory could not be removed; such a lock goes stale and is taken over after `stale` ms.
   */
  release(): Promise<void>;
}

interface HeldLock {
  device: string;
  holder: LockHolder;
  /** Set by proper-lockfile's onCompromised: the lock is no longer ours. */
  lost: boolean;
  unlock: () => Promise<void>;
  /** Withdraws the removal of the holder file at process exit (the release removes it). */
  forgetAtExit: () => void;
}

/**
 * Takes one proper-lockfile lock per physical device, in ascending id order, waiting (polling at
 * most every {@link LOCK_POLL_MS} ms) until `deadline`. Fails closed: on timeout it throws
 * OMNI_LOCK_TIMEOUT naming the device and its current holder, on abort OMNI_CANCELLED; in both
 * cases the locks already taken are released first. A holder that died is detected only through
 * proper-lockfile's staleness (`LOCK_OPTIONS.stale`), never by looking at pids.
 */
export async function acquireDeviceLocks(opts: AcquireDeviceLocksOptions): Promise<DeviceLockSet> {
  const devices = sortDeviceIds(uniqueDeviceIds(opts.devices));
  for (const device of devices) assertDeviceId(device);
  throwIfCancelled(opts, devices[0]);
  try {
    await prepareLockDir(opts.lockDir, lockContext(opts, devices[0]));
  } catch (err) {
    throw isOmniError(err) ? err : lockDirError(opts, devices[0], err);
  }

  const held: HeldLock[] = [];
  try {
    for (const device of devices) {
      held.push(await acquireOne(opts, device));
      safeCall(() => opts.onAcquired?.(device));
    }
  } catch (err) {
    await releaseAll(opts, held).catch(() => undefined); // the acquisition error is the one to report
    throw err;
  }

  let releasing: Promise<void> | undefined;
  return {
    devices: held.map((h) => h.device),
    release: () => (releasing ??= releaseAll(opts, held)),
  };
}

async function acquireOne(opts: AcquireDeviceLocksOptions, device: string): Promise<HeldLock> {
  const target = deviceLockTarget(opts.lockDir, device);
  const started = Date.now();
  let reportedHolder: string | undefined;
  for (;;) {
    throwIfCancelled(opts, device);
    // Created before lock() so the compromise callback, which may fire at any later time, has
    // a record to mark.
    await checkDeviceEntries(opts.lockDir, device, lockContext(opts, device));
    const entry: { held?: HeldLock } = {};
    let unlock: () => Promise<void>;
    try {
      unlock = await lock(target, {
        ...LOCK_OPTIONS,
        onCompromised: (err: Error) => onLockCompromised(opts, device, entry.held, err),
      });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EPERM' || code === 'EACCES') throw await foreignStaleLockError(opts, device, err);
      if (code !== 'ELOCKED') throw lockDirError(opts, device, err);
      if (opts.onWaiting) {
        const holder = await readLockHolder(opts.lockDir, device);
        const key = JSON.stringify(holder);
        if (key !== reportedHolder) {
          reportedHolder = key;
          safeCall(() => opts.onWaiting?.(device, holder));
        }
      }
      const now = Date.now();
      if (now >= opts.deadline) throw await lockTimeout(opts, device, now - started);
      await sleep(Math.min(LOCK_POLL_MS, opts.deadline - now), opts.signal);
      continue;
    }

    const holder = currentHolder(opts.holder);
    const forgetAtExit = removeHolderFileAtExit(holderFilePath(opts.lockDir, device), holder);
    const held: HeldLock = { device, holder, lost: false, unlock, forgetAtExit };
    entry.held = held;
    // The holder file is diagnostics only; failing to write it must not fail the launch.
    await writeLockHolder(opts.lockDir, device, held.holder).catch(() => undefined);
    if (opts.signal.aborted) {
      // lock() may complete after the abort fired: give the device back before reporting.
      await releaseOne(opts, held).catch(() => undefined);
      throwIfCancelled(opts, device);
    }
    return held;
  }
}

function onLockCompromised(
  opts: AcquireDeviceLocksOptions,
  device: string,
  held: HeldLock | undefined,
  cause: Error,
): void {
  // Runs inside proper-lockfile's refresh timer: anything thrown here would be an uncaught
  // exception, so every step is guarded.
  try {
    if (held !== undefined) held.lost = true;
    const err = new OmniError('OMNI_LOCK_COMPROMISED', `the init lock of device ${device} was lost: ${cause.message}`, {
      cause,
      context: lockContext(opts, device),
      hint:
        `the lock in ${opts.lockDir} was removed or taken over (the event loop was blocked longer than ` +
        `${LOCK_OPTIONS.stale} ms, or someone deleted the lock directory); the replica's init is not exclusive anymore`,
    });
    safeCall(() => opts.onCompromised?.(device, err));
  } catch {
    // never let a compromise crash the orchestrator
  }
}

async function releaseAll(opts: AcquireDeviceLocksOptions, held: HeldLock[]): Promise<void> {
  const failures: string[] = [];
  for (const h of [...held].reverse()) {
    try {
      await releaseOne(opts, h);
    } catch (err) {
      failures.push(`device ${h.device}: ${messageOf(err)}`);
    }
  }
  if (failures.length > 0) {
    throw new OmniError('OMNI_INTERNAL', `could not release device locks: ${failures.join('; ')}`, {
      context: { ...lockContext(opts, held[0]?.device), phase: 'release' },
      hint: `the locks go stale and are taken over after ${LOCK_OPTIONS.stale} ms; check ${opts.lockDir}`,
    });
  }
}

async function releaseOne(opts: AcquireDeviceLocksOptions, h: HeldLock): Promise<void> {
  h.forgetAtExit();
  // Holder file first: once the lock directory is gone, someone else may write theirs.
  await removeOwnLockHolder(opts.lockDir, h.device, h.holder);
  // Reported as the holder gives the device up, before the lock directory goes: another process
  // can take the device the instant it is gone, and its `lock:acquired` must not predate this.
  safeCall(() => opts.onReleased?.(h.device));
  try {
    await h.unlock();
  } catch (err) {
    // A lost lock is already released from proper-lockfile's point of view.
    const code = errnoCode(err);
    if (code !== 'ERELEASED' && code !== 'ENOTACQUIRED' && code !== 'ENOENT') throw err;
  }
}

async function lockTimeout(opts: AcquireDeviceLocksOptions, device: string, waitedMs: number): Promise<OmniError> {
  const holder = await readLockHolder(opts.lockDir, device);
  return new OmniError(
    'OMNI_LOCK_TIMEOUT',
    `${replicaLabel(opts.holder)} gave up waiting for device ${device} after ${waitedMs} ms: ` +
      `it is still locked by ${describeHolder(holder)}`,
    {
      context: { ...lockContext(opts, device), ...(holder === null ? {} : { holder }) },
      hint:
        `another replica is initialising on device ${device}; wait for it or stop it, or raise ` +
        `stage_init_timeout. A holder that died frees the lock after ${LOCK_OPTIONS.stale / 1000} s.`,
    },
  );
}

/**
 * The lock directory itself is unusable (permissions, not a directory). Reported under the lock
 * timeout code because the outcome is the same: the device was not locked, and we fail closed.
 */
/**
 * proper-lockfile could not take over a lock it found stale: in the shared (sticky) lock directory
 * only its owner may remove it, so a lock left by another user's omnistage that died stays until
 * that user or root removes it. Fail closed, saying whose it is and what to remove.
 */
async function foreignStaleLockError(
  opts: AcquireDeviceLocksOptions,
  device: string,
  cause: unknown,
): Promise<OmniError> {
  const holder = await readLockHolder(opts.lockDir, device);
  const lockPath = deviceLockDir(opts.lockDir, device);
  const owner = await stat(lockPath).then(
    (st) => `user id ${st.uid}`,
    () => 'another user',
  );
  return new OmniError(
    'OMNI_LOCK_TIMEOUT',
    `device ${device}: its init lock was left by ${describeHolder(holder)} (${owner}), and this user may not remove it (${messageOf(cause)})`,
    {
      cause,
      context: { ...lockContext(opts, device), ...(holder ? { holder } : {}) },
      hint: `once that process is surely gone, remove ${lockPath} as its owner or root; or use a lock directory of your own (--lock-dir), giving up the serialisation with that user's runs`,
    },
  );
}

function lockDirError(opts: AcquireDeviceLocksOptions, device: string | undefined, cause: unknown): OmniError {
  return new OmniError(
    'OMNI_LOCK_TIMEOUT',
    `could not lock device ${device ?? '?'} in ${opts.lockDir}: ${messageOf(cause)}`,
    {
      cause,
      context: lockContext(opts, device),
      hint: 'check that the lock directory is writable by this user (set it with --lock-dir or OMNISTAGE_LOCK_DIR)',
    },
  );
}

function throwIfCancelled(opts: AcquireDeviceLocksOptions, device: string | undefined): void {
  if (!opts.signal.aborted) return;
  throw cancelled(`${replicaLabel(opts.holder)}: waiting for the init lock of device ${device ?? '?'}`, {
    cause: opts.signal.reason,
    context: lockContext(opts, device),
    hint: LAUNCH_CANCELLED_HINT,
  });
}

function lockContext(opts: AcquireDeviceLocksOptions, device: string | undefined) {
  return {
    stage_id: opts.holder.stage_id,
    replica_id: opts.holder.replica_id,
    phase: 'lock',
    ...(device === undefined ? {} : { device }),
  };
}

/** Resolves after `ms`, or earlier when `signal` aborts (the caller re-checks the signal). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
  });
}

function safeCall(fn: () => void): void {
  try {
    fn();
  } catch {
    // observer callbacks must not break lock bookkeeping
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
