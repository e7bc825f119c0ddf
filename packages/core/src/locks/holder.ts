import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, unlinkSync } from 'node:fs';
import { open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { atProcessExit } from '../process/exit-tasks.js';
import { MAX_HOLDER_FILE_BYTES } from './lock-dir.js';
import { deviceLockDir, holderFilePath } from './paths.js';

/** Who holds a device lock: the sidecar `device-<id>.holder.json` written after acquiring. */
export interface LockHolder {
  pid: number;
  host: string;
  run_id: string;
  stage_id: number;
  replica_id: number;
  /** ISO-8601 time the lock was acquired. */
  since: string;
}

/** Builds the holder record of this process for one acquisition. */
export function currentHolder(holder: { run_id: string; stage_id: number; replica_id: number }): LockHolder {
  return {
    pid: process.pid,
    host: hostname(),
    run_id: holder.run_id,
    stage_id: holder.stage_id,
    replica_id: holder.replica_id,
    since: new Date().toISOString(),
  };
}

/**
 * Writes the holder file atomically (temp file + rename) so a concurrent reader never sees a
 * half-written JSON. Only called while the lock is held.
 */
export async function writeLockHolder(lockDir: string, device: string, holder: LockHolder): Promise<void> {
  await writeHolderFile(holderFilePath(lockDir, device), holder);
}

/** {@link writeLockHolder} at an explicit path (the holder file of a shared mark). */
export async function writeHolderFile(target: string, holder: LockHolder): Promise<void> {
  const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    // 'wx': never write through something planted under the temp name.
    await writeFile(tmp, `${JSON.stringify(holder)}\n`, { mode: 0o644, flag: 'wx' });
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Reads who holds `device`, for wait and timeout messages. Returns null when the device is not
 * locked (a holder file without a `.lock` directory is a leftover of a killed process) or the
 * holder has not written its file yet / it is unreadable. Diagnostics only: never used to decide
 * whether a lock may be broken.
 */
export async function readLockHolder(lockDir: string, device: string): Promise<LockHolder | null> {
  return readHolderOf(deviceLockDir(lockDir, device), holderFilePath(lockDir, device));
}

/** {@link readLockHolder} of any lock directory and its holder file (e.g. a shared mark's). */
export async function readHolderOf(lockPath: string, holderPath: string): Promise<LockHolder | null> {
  try {
    await stat(lockPath);
  } catch {
    return null;
  }
  try {
    const text = await readHolderText(holderPath);
    const parsed: unknown = text === null ? null : JSON.parse(text);
    return isLockHolder(parsed) ? parsed : null;
  } catch {
    return null;
  }
}

/**
 * Removes the holder file if it is still the one `holder` wrote. After a compromise another
 * process may own the device and have written its own record, which must survive.
 */
export async function removeOwnLockHolder(lockDir: string, device: string, holder: LockHolder): Promise<void> {
  await removeOwnHolderFile(holderFilePath(lockDir, device), holder);
}

/** {@link removeOwnLockHolder} at an explicit path. */
export async function removeOwnHolderFile(path: string, holder: LockHolder): Promise<void> {
  let current: unknown;
  try {
    const text = await readHolderText(path);
    if (text === null) return;
    current = JSON.parse(text);
  } catch {
    return; // already gone or unreadable: nothing of ours to remove
  }
  if (!isLockHolder(current) || !sameHolder(current, holder)) return;
  await unlink(path).catch(() => undefined);
}

// Another user may plant a FIFO (open blocks), a link to /dev/zero (endless) or a huge file here.
const SAFE_READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The text of a holder file, or null unless it is a small regular file (links are not followed). */
async function readHolderText(path: string): Promise<string | null> {
  let handle;
  try {
    handle = await open(path, SAFE_READ_FLAGS);
  } catch {
    return null;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.size > MAX_HOLDER_FILE_BYTES) return null;
    const buf = Buffer.alloc(MAX_HOLDER_FILE_BYTES);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** {@link readHolderText} for the exit hook, where only synchronous calls run. */
export function readHolderTextSync(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, SAFE_READ_FLAGS);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_HOLDER_FILE_BYTES) return null;
    const buf = Buffer.alloc(MAX_HOLDER_FILE_BYTES);
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Human-readable holder description for error messages. */
export function describeHolder(holder: LockHolder | null): string {
  if (holder === null) return 'an unknown holder';
  return (
    `pid ${holder.pid} on ${holder.host} (run ${holder.run_id}, stage ${holder.stage_id}, ` +
    `replica ${holder.replica_id}, since ${holder.since})`
  );
}

function sameHolder(a: LockHolder, b: LockHolder): boolean {
  return (
    a.pid === b.pid &&
    a.host === b.host &&
    a.run_id === b.run_id &&
    a.stage_id === b.stage_id &&
    a.replica_id === b.replica_id &&
    a.since === b.since
  );
}

function isLockHolder(value: unknown): value is LockHolder {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['pid'] === 'number' &&
    typeof v['host'] === 'string' &&
    typeof v['run_id'] === 'string' &&
    typeof v['stage_id'] === 'number' &&
    typeof v['replica_id'] === 'number' &&
    typeof v['since'] === 'string'
  );
}

/**
 * proper-lockfile removes its `.lock` directories when the process exits; this removes the holder
 * file beside one of them too (if it is still ours), so a finished orchestrator leaves nothing in
 * the lock dir. Returns the withdrawal, for when the lock is released normally.
 */
export function removeHolderFileAtExit(path: string, holder: LockHolder): () => void {
  return atProcessExit(() => {
    if (readHolderTextSync(path)?.trim() === JSON.stringify(holder)) unlinkSync(path);
  });
}
