/**
 * The lock directory is shared by every user of the host (mode 1777, like /tmp), so anything in
 * it may have been put there by someone else. Before it is used: the directory itself must be a
 * real directory (not a link) that only this user, root, or — for the shared sticky directory —
 * nobody but each file's owner can change; and nothing in a device's place may be a link, a FIFO
 * or a device file. Anything else is refused at once, naming the object, its owner and what to
 * remove, rather than hanging on it or failing at the deadline.
 */
import { constants, type Stats } from 'node:fs';
import { access, chmod, lstat, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OmniError } from '../errors.js';
import { deviceLockDir, holderFilePath } from './paths.js';

/** A holder record is a few hundred bytes; a bigger file is not one omnistage wrote. */
export const MAX_HOLDER_FILE_BYTES = 4096;

const LOCK_DIR_HINT =
  'use a lock directory of your own with --lock-dir or OMNISTAGE_LOCK_DIR (giving up the serialisation with other users), ' +
  'or have its owner or root remove it so omnistage recreates it (mode 1777, sticky)';

/**
 * Creates the lock directory if it is missing (mode 1777 + sticky) and checks that it can be
 * trusted and written. Throws OMNI_LOCK_UNSAFE naming what is wrong.
 */
export async function prepareLockDir(lockDir: string, context: Record<string, unknown>): Promise<void> {
  // Shared by every omnistage on the host, whoever runs it: created world-writable with the
  // sticky bit (as /tmp), so another user can take locks in it but not remove ours.
  if (await ensureDir(lockDir)) await chmod(lockDir, 0o1777);
  const st = await lstat(lockDir);
  const fail = (what: string, hint = LOCK_DIR_HINT): OmniError =>
    new OmniError('OMNI_LOCK_UNSAFE', `the lock directory ${lockDir} ${what}`, {
      context: { ...context, lock_dir: lockDir },
      hint,
    });
  if (st.isSymbolicLink())
    throw fail(`is a symbolic link (owner user id ${st.uid}); omnistage does not follow links there`);
  if (!st.isDirectory()) throw fail(`is a ${kindOf(st)}, not a directory (owner user id ${st.uid})`);
  const mode = st.mode & 0o7777;
  const me = process.getuid?.();
  const sharedSticky = (mode & 0o1777) === 0o1777;
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
    throw fail(
      `is writable by other users without the sticky bit (mode ${octal(mode)}): anyone could remove the locks in it`,
    );
  }
  if (me !== undefined && st.uid !== me && st.uid !== 0 && !sharedSticky) {
    throw fail(`belongs to user id ${st.uid} (mode ${octal(mode)}): that user controls every lock in it`);
  }
  try {
    await access(lockDir, constants.W_OK | constants.X_OK);
  } catch (cause) {
    throw new OmniError(
      'OMNI_LOCK_UNSAFE',
      `this user (id ${me ?? '?'}) cannot create locks in ${lockDir} (EACCES): it belongs to user id ${st.uid}, mode ${octal(mode)}`,
      { cause, context: { ...context, lock_dir: lockDir }, hint: LOCK_DIR_HINT },
    );
  }
}

/**
 * Refuses objects in a device's place that omnistage never creates: a `device-N.lock` that is not
 * a directory, a holder file that is not a small regular file. Called before each lock attempt.
 */
export async function checkDeviceEntries(
  lockDir: string,
  device: string,
  context: Record<string, unknown>,
): Promise<void> {
  const lock = await lstatOrNull(deviceLockDir(lockDir, device));
  if (lock && !lock.isDirectory())
    throw foreignObject(deviceLockDir(lockDir, device), lock, 'a directory omnistage creates', context);
  const holderPath = holderFilePath(lockDir, device);
  const holder = await lstatOrNull(holderPath);
  if (holder && (!holder.isFile() || holder.size > MAX_HOLDER_FILE_BYTES)) {
    throw foreignObject(holderPath, holder, 'a file omnistage writes', context);
  }
}

function foreignObject(path: string, st: Stats, expected: string, context: Record<string, unknown>): OmniError {
  const what = st.isFile() ? `a ${st.size}-byte file, larger than ${expected}` : `a ${kindOf(st)}, not ${expected}`;
  return new OmniError('OMNI_LOCK_UNSAFE', `${path} is ${what} (owner user id ${st.uid})`, {
    context: { ...context, path, owner_uid: st.uid },
    hint: `someone put it there, not omnistage: remove ${path} (as user id ${st.uid} or root), or use a lock directory of your own (--lock-dir)`,
  });
}

function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'symbolic link';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'device file';
  if (st.isDirectory()) return 'directory';
  return 'file';
}

const octal = (mode: number): string => `0${mode.toString(8).padStart(3, '0')}`;

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch {
    return null;
  }
}

/**
 * `mkdir -p` without `{ recursive: true }`: Node's recursive mkdir never settles for some paths
 * (e.g. under /proc, where mkdir keeps answering ENOENT), which would hang the launch and its
 * teardown. Here every level is tried once, so any such path fails with its errno instead.
 * Resolves true when this call created `dir` itself.
 */
async function ensureDir(dir: string, depth = 0): Promise<boolean> {
  try {
    await mkdir(dir);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false; // checked by the caller
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir || depth > 64) throw err;
    await ensureDir(parent, depth + 1);
    try {
      await mkdir(dir);
      return true;
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again;
      return false;
    }
  }
}
