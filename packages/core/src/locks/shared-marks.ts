/**
 * Shared holds of devices. proper-lockfile has no shared locks, so a shared holder takes a lock of
 * its own on a unique name beside the device's lock (`device-<id>.shared-<token>.lock`, refreshed
 * like any proper-lockfile lock, with a holder file). Marks are only ever created while the
 * device's exclusive lock (the gate) is held, so whoever holds the gate and sees no live mark of
 * anyone else has the device alone. A mark whose holder stopped refreshing is stale after
 * `LOCK_OPTIONS.stale` and is removed by the next exclusive waiter (fail closed when this user may
 * not remove it: another user's dead run keeps the device until its owner or root removes it).
 */
import { randomBytes } from 'node:crypto';
import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { check, lock } from 'proper-lockfile';
import { OmniError } from '../errors.js';
import {
  currentHolder,
  describeHolder,
  readHolderOf,
  removeHolderFileAtExit,
  removeOwnHolderFile,
  writeHolderFile,
  type LockHolder,
} from './holder.js';
import type { AcquireDeviceLocksOptions } from './device-locks.js';
import { LOCK_OPTIONS, LOCK_POLL_MS } from './options.js';
import { sharedMarkPrefix, sharedMarkTarget } from './paths.js';
import { cancelled, LAUNCH_CANCELLED_HINT, replicaLabel } from '../error-messages.js';

interface Mark {
  target: string;
  holder: LockHolder;
  unlock: () => Promise<void>;
  forgetAtExit: () => void;
}

/** The shared marks of one holding, one per device. */
export interface SharedMarks {
  readonly token: string;
  release(): Promise<void>;
}

/** Takes a shared mark on each device (ascending). The caller holds the devices' gates. */
export async function takeSharedMarks(
  opts: AcquireDeviceLocksOptions,
  devices: readonly string[],
): Promise<SharedMarks> {
  const token = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const marks: Mark[] = [];
  const release = async (): Promise<void> => {
    for (const m of marks.splice(0).reverse()) {
      m.forgetAtExit();
      await removeOwnHolderFile(`${m.target}.holder.json`, m.holder);
      await m.unlock().catch(() => undefined); // a lost mark is released already
    }
  };
  try {
    for (const device of devices) {
      const target = sharedMarkTarget(opts.lockDir, device, token);
      const unlock = await lock(target, {
        ...LOCK_OPTIONS,
        onCompromised: (err: Error) => {
          try {
            opts.onCompromised?.(device, compromised(opts, device, err));
          } catch {
            // never let a compromise crash the orchestrator
          }
        },
      });
      const holder = currentHolder(opts.holder);
      const forgetAtExit = removeHolderFileAtExit(`${target}.holder.json`, holder);
      const mark: Mark = { target, holder, unlock, forgetAtExit };
      marks.push(mark);
      await writeHolderFile(`${target}.holder.json`, mark.holder).catch(() => undefined);
    }
  } catch (err) {
    await release();
    throw err;
  }
  let releasing: Promise<void> | undefined;
  return { token, release: () => (releasing ??= release()) };
}

/**
 * Waits, device by device in ascending order, until no live shared mark but `ownToken`'s is left,
 * removing stale ones. The caller holds the gates, so no new mark appears meanwhile. Fails closed
 * at `opts.deadline` with OMNI_LOCK_TIMEOUT naming a holder still loading.
 */
export async function drainSharedMarks(
  opts: AcquireDeviceLocksOptions,
  devices: readonly string[],
  ownToken: string | null,
  what: string,
): Promise<void> {
  const started = Date.now();
  for (const device of devices) {
    for (;;) {
      const others = await liveOthers(opts, device, ownToken);
      if (others.length === 0) break;
      if (opts.signal.aborted) {
        throw cancelled(`${replicaLabel(opts.holder)}: waiting for ${what} on device ${device}`, {
          cause: opts.signal.reason,
          context: context(opts, device),
          hint: LAUNCH_CANCELLED_HINT,
        });
      }
      const now = Date.now();
      if (now >= opts.deadline) {
        const holder = await readHolderOf(`${others[0]}.lock`, `${others[0]}.holder.json`);
        throw new OmniError(
          'OMNI_LOCK_TIMEOUT',
          `${replicaLabel(opts.holder)} gave up waiting for ${what} on device ${device} after ${now - started} ms: ` +
            `it is still held shared (loading) by ${describeHolder(holder)}`,
          {
            context: { ...context(opts, device), ...(holder === null ? {} : { holder }) },
            hint: `a co-located replica is still loading on device ${device}; raise stage_init_timeout, or stop it. A holder that died frees it after ${LOCK_OPTIONS.stale / 1000} s.`,
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(LOCK_POLL_MS, opts.deadline - now)));
    }
  }
}

/** The targets of live marks on `device` other than `ownToken`'s; stale ones are removed. */
async function liveOthers(opts: AcquireDeviceLocksOptions, device: string, ownToken: string | null): Promise<string[]> {
  const prefix = sharedMarkPrefix(device);
  const names = (await readdir(opts.lockDir)).filter((n) => n.startsWith(prefix) && n.endsWith('.lock'));
  const live: string[] = [];
  for (const name of names) {
    const target = join(opts.lockDir, name.slice(0, -'.lock'.length));
    if (ownToken !== null && target.endsWith(`.shared-${ownToken}`)) continue;
    const st = await lstat(join(opts.lockDir, name)).catch(() => null);
    if (st === null) continue; // released meanwhile
    if (!st.isDirectory()) {
      throw new OmniError(
        'OMNI_LOCK_UNSAFE',
        `${join(opts.lockDir, name)} is not a directory omnistage creates (owner user id ${st.uid})`,
        {
          context: { ...context(opts, device), path: join(opts.lockDir, name), owner_uid: st.uid },
          hint: `someone put it there, not omnistage: remove it (as user id ${st.uid} or root), or use a lock directory of your own (--lock-dir)`,
        },
      );
    }
    if (await check(target, { stale: LOCK_OPTIONS.stale, realpath: false })) {
      live.push(target);
      continue;
    }
    await removeStale(opts, device, target, st.uid);
  }
  return live;
}

async function removeStale(
  opts: AcquireDeviceLocksOptions,
  device: string,
  target: string,
  uid: number,
): Promise<void> {
  try {
    await rmdir(`${target}.lock`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw new OmniError(
      'OMNI_LOCK_TIMEOUT',
      `device ${device}: a shared hold left by a dead process (user id ${uid}) cannot be removed by this user: ${target}.lock`,
      {
        cause: err,
        context: context(opts, device),
        hint: `once that process is surely gone, remove ${target}.lock as its owner or root; or use a lock directory of your own (--lock-dir)`,
      },
    );
  }
  await unlink(`${target}.holder.json`).catch(() => undefined);
}

function compromised(opts: AcquireDeviceLocksOptions, device: string, cause: Error): OmniError {
  return new OmniError('OMNI_LOCK_COMPROMISED', `the shared init hold of device ${device} was lost: ${cause.message}`, {
    cause,
    context: context(opts, device),
    hint: `the shared mark in ${opts.lockDir} was removed or went stale (the event loop was blocked longer than ${LOCK_OPTIONS.stale} ms)`,
  });
}

function context(opts: AcquireDeviceLocksOptions, device: string) {
  return { stage_id: opts.holder.stage_id, replica_id: opts.holder.replica_id, phase: 'lock', device };
}
