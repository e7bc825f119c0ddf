/**
 * The shared-memory payload store: one file per payload, `omnistage-<run_id>-<key>`, in the run's
 * private directory (mode 0700, `omnistage-<run_id>+<random>`, see {@link createRunPayloadDir})
 * under /dev/shm (a tmpfs: the bytes stay in memory) or, where that does not exist or is not
 * writable, the OS temp dir. The producer writes a file once (or links a pool segment to the name,
 * see shm-pool.ts); consumers read it by key; the orchestrator deletes the name when the last
 * consumer acknowledged, and removes the run's directory at teardown.
 *
 * Reads never follow a link nor block on a FIFO, and accept only a regular file of the size the
 * reference announced: the directory is private, but a replica's bug must not make the
 * orchestrator hand another file to the user.
 *
 * Reading without copying: where the optional addon `dist/native/shm_map.node` was built (see
 * scripts/build-native.mjs) and `$OMNISTAGE_SHM_MAP` is not `0`, readPayload without `into` maps
 * the file (mmap) instead of reading it: the consumer's Buffer is the tmpfs pages the producer
 * wrote, zero copy, no fresh memory to fault in and zero (its pages are mapped on first access).
 * - The file may be unlinked while the Buffer lives (the orchestrator deletes it on the last
 *   payload_ack): the pages stay until the Buffer is garbage-collected, and are unmapped in the
 *   event-loop turn after that. A consumer that maps many large payloads in one synchronous loop
 *   holds all of them until it yields (or passes `into`, or sets OMNISTAGE_SHM_MAP=0).
 * - Writes into the Buffer are private (copy-on-write): the file and other consumers never see them.
 * - A payload file must never be truncated while mapped (a read of a page past the new end is a
 *   SIGBUS). The store never does: files are written once, then only unlinked; pool segments are
 *   sized once, when created.
 * - A pool segment is rewritten for a later payload: its Buffer holds a shared lock on it until it
 *   is collected, and the producer reuses only a segment it can lock exclusively (shm-pool.ts).
 * Without the addon (not built, `OMNISTAGE_SHM_MAP=0`, or a mapping that fails) it reads the file
 * into a fresh Buffer, as it does into `into`. {@link payloadReadPath} says which applies.
 *
 * Imported by the worker SDK: node built-ins only, synchronous calls (a tmpfs write or read is a
 * memory copy).
 */
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  statSync,
  unlink,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OmniError } from '../errors.js';
import { isValidPayloadKey } from './payload-ref.js';
import type { SegmentMappings } from './shm-mappings.js';
import { shmMapper, shmNative } from './shm-native.js';

export { SHM_MAP_ENV } from './shm-native.js';

/** Overrides the payload directory (orchestrator and replicas must agree; replicas inherit it). */
export const PAYLOAD_DIR_ENV = 'OMNISTAGE_PAYLOAD_DIR';

const SHM_DIR = '/dev/shm';
const FILE_PREFIX = 'omnistage-';

/** Run ids that may appear in a file name. */
const RUN_ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

let cachedDefault: string | undefined;

/**
 * Where payload files live: `$OMNISTAGE_PAYLOAD_DIR` if set, else /dev/shm when it is a writable
 * directory, else the OS temp dir.
 */
export function payloadDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const override = env[PAYLOAD_DIR_ENV];
  if (override !== undefined && override !== '') return override;
  cachedDefault ??= writableDir(SHM_DIR) ? SHM_DIR : tmpdir();
  return cachedDefault;
}

function writableDir(dir: string): boolean {
  try {
    if (!statSync(dir).isDirectory()) return false;
    accessSync(dir, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The file name of a payload: `omnistage-<run_id>-<key>`. */
export function payloadFileName(runId: string, key: string): string {
  if (!RUN_ID_RE.test(runId)) throw payloadError(`run id ${JSON.stringify(runId)} cannot name a payload file`);
  if (!isValidPayloadKey(key))
    throw payloadError(`payload key ${JSON.stringify(key)} is not valid (letters, digits and _ only)`);
  return `${FILE_PREFIX}${runId}-${key}`;
}

/** Separates the run id from the random part of a run's private directory (never in a run id). */
const RUN_DIR_MARK = '+';
/** Separates the run id from a pool segment's name (never in a run id). */
const SEGMENT_MARK = '=';

/** The file name of a pool segment: `omnistage-<run_id>=<name>` (not a payload name: no consumer reads it by key). */
export function segmentFileName(runId: string, name: string): string {
  payloadFileName(runId, name); // validates both
  return `${FILE_PREFIX}${runId}${SEGMENT_MARK}${name}`;
}

/**
 * Creates the run's private payload directory `omnistage-<run_id>+<random>` (mode 0700) in
 * `base`: other users can neither list the run's payload names nor create files under them. The
 * name is random, and made with an exclusive mkdir checked afterwards (ours, a directory, 0700),
 * so nobody can have prepared it.
 */
export function createRunPayloadDir(runId: string, base: string = payloadDir()): string {
  payloadFileName(runId, 'x'); // validates the run id
  for (let attempt = 0; ; attempt++) {
    const path = join(base, `${FILE_PREFIX}${runId}${RUN_DIR_MARK}${randomBytes(12).toString('hex')}`);
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 3) continue;
      throw payloadError(`cannot create the run's payload directory in ${base}: ${(err as Error).message}`, err);
    }
    const st = lstatSync(path);
    const uid = process.getuid?.();
    if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
      throw payloadError(
        `the run's payload directory ${path} is not a private directory of this user after creating it`,
      );
    }
    return path;
  }
}

/** The full path of a payload file. */
export function payloadPath(runId: string, key: string, dir: string = payloadDir()): string {
  return join(dir, payloadFileName(runId, key));
}

/**
 * Writes a payload once: the file is created exclusively (an existing key is an error, never
 * overwritten), mode 0600. A partial file left by a failed write is removed.
 */
export function writePayload(runId: string, key: string, bytes: Uint8Array, dir: string = payloadDir()): string {
  const path = payloadPath(runId, key, dir);
  const fd = openSync(path, 'wx', 0o600);
  try {
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(path);
    if (isNoSpace(err)) throw noSpaceError(key, bytes.byteLength, dir, err);
    throw payloadError(`writing payload ${key} to ${dir} failed: ${(err as Error).message}`, err);
  }
  closeSync(fd);
  return path;
}

/**
 * How readPayload without `into` gets the bytes now: `mmap` (the Buffer maps the file, zero copy)
 * or `read` (copied into a fresh Buffer).
 */
export function payloadReadPath(): 'mmap' | 'read' {
  return shmMapper() === undefined ? 'read' : 'mmap';
}

/** Options of {@link readPayload}. */
export interface ReadPayloadOptions {
  /** The size the reference announced: a file of another size is an error. */
  size?: number;
  /**
   * The reference's `segment_bytes`: the payload is the first `size` bytes of a pool segment of
   * exactly this many bytes (see shm-pool.ts), read under a shared lock.
   */
  segmentBytes?: number;
  /** Payload directory (default {@link payloadDir}). */
  dir?: string;
  /** A consumer's segment mappings: a pool segment is mapped once and its payloads are views of it. */
  mappings?: SegmentMappings;
  /**
   * Read into this buffer (at least the payload's size) instead of a fresh one: an engine that
   * reuses a staging buffer skips the page faults of new memory. The result is a view of it.
   */
  into?: Uint8Array;
}

/**
 * Opens a payload file for reading without following a link or blocking on a FIFO (a file
 * someone else planted at the name must not be read as the payload).
 */
function openPayloadFile(path: string, key: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw openError(err, path, key);
  }
}

function openError(err: unknown, path: string, key: string): OmniError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return payloadError(
      `payload ${key} is gone (${path}): it was released (every consumer acknowledged it, or its request ended) or the run was swept`,
      err,
    );
  }
  if (code === 'ELOOP')
    return payloadError(`payload ${key} (${path}) is a symbolic link, not a regular file: refused`, err);
  return payloadError(`opening payload ${key} (${path}) failed: ${(err as Error).message}`, err);
}

/**
 * The number of bytes to read from an open payload file: it must be a regular file whose size is
 * what its reference says (`segmentBytes` for a pool segment, else `size`).
 */
export function checkPayloadFile(
  st: Stats,
  key: string,
  options: Pick<ReadPayloadOptions, 'size' | 'segmentBytes'>,
): number {
  if (!st.isFile()) throw payloadError(`payload ${key} is not a regular file: refused`);
  const { size, segmentBytes } = options;
  if (segmentBytes === undefined) {
    if (size !== undefined && st.size !== size)
      throw payloadError(`payload ${key} has ${st.size} bytes, its reference says ${size}`);
    return st.size;
  }
  if (st.size !== segmentBytes)
    throw payloadError(`payload ${key} has ${st.size} bytes, its reference says a segment of ${segmentBytes}`);
  if (size === undefined || size > segmentBytes)
    throw payloadError(`payload ${key}: its reference says ${String(size)} bytes in a segment of ${segmentBytes}`);
  return size;
}

/**
 * Reads a payload by key: a Buffer mapping the file (see the top of this module), or a copy in a
 * fresh buffer, or in `into`. A pool segment is locked (shared) first, and its Buffer keeps the
 * lock while it lives, so the producer cannot reuse the segment under it.
 */
export function readPayload(runId: string, key: string, options: ReadPayloadOptions = {}): Buffer {
  const path = payloadPath(runId, key, options.dir);
  const fd = openPayloadFile(path, key);
  let owned = true; // false once a mapped Buffer took over the fd
  try {
    const st = fstatSync(fd);
    const size = checkPayloadFile(st, key, options);
    const pooled = options.segmentBytes !== undefined;
    const into = options.into;
    const map = into === undefined ? shmMapper() : undefined;
    if (pooled && map !== undefined && options.mappings !== undefined) {
      owned = false; // view() takes the fd over
      return options.mappings.view(fd, st, path, size, options.segmentBytes!) ?? gone(path, key);
    }
    if (pooled) holdSegment(fd, st, path, key);
    if (into !== undefined && into.byteLength < size)
      throw payloadError(`payload ${key} has ${size} bytes, the buffer to read it into only ${into.byteLength}`);
    if (map !== undefined) {
      try {
        const buf = pooled ? map.mapHeld(fd, size) : map.mapPayload(fd, size);
        owned = !pooled;
        return buf;
      } catch {
        // e.g. the process's map count is exhausted: the copy below still works
      }
    }
    return readInto(
      fd,
      key,
      size,
      into === undefined ? Buffer.allocUnsafeSlow(size) : Buffer.from(into.buffer, into.byteOffset, size),
    );
  } catch (err) {
    throw err instanceof OmniError
      ? err
      : payloadError(`reading payload ${key} (${path}) failed: ${(err as Error).message}`, err);
  } finally {
    if (owned) closeSync(fd);
  }
}

/**
 * Opens a payload to stream it to another host (the payload server): the same refusals as
 * {@link readPayload} (no link, a regular file of the announced size), a pool segment locked
 * shared for as long as `fd` is open. The caller closes `fd`.
 */
export function openPayloadToSend(
  runId: string,
  key: string,
  options: Pick<ReadPayloadOptions, 'size' | 'segmentBytes' | 'dir'>,
): { fd: number; size: number } {
  const path = payloadPath(runId, key, options.dir);
  const fd = openPayloadFile(path, key);
  try {
    const st = fstatSync(fd);
    const size = checkPayloadFile(st, key, options);
    if (options.segmentBytes !== undefined) holdSegment(fd, st, path, key);
    return { fd, size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Takes the shared lock of a pool segment and checks the key still names it: between our open and
 * the lock, the payload may have been released and the segment reused for another one.
 */
function holdSegment(fd: number, st: Stats, path: string, key: string): void {
  const native = shmNative();
  if (native === undefined) return; // no locks without the addon: no pool either (the producer needs them)
  if (!native.lock(fd, false)) gone(path, key);
  const now = statSync(path, { throwIfNoEntry: false });
  if (now === undefined || now.ino !== st.ino || now.dev !== st.dev) gone(path, key);
}

/** Throws the error of a payload that was released (and its segment maybe reused). */
function gone(path: string, key: string): never {
  throw openError(Object.assign(new Error('released'), { code: 'ENOENT' }), path, key);
}

function readInto(fd: number, key: string, size: number, buf: Buffer): Buffer {
  let off = 0;
  while (off < size) {
    const n = readSync(fd, buf, off, size - off, off);
    if (n === 0) throw payloadError(`payload ${key} ended after ${off} of ${size} bytes`);
    off += n;
  }
  return buf;
}

/**
 * Reads a copy of a payload without blocking the event loop (the orchestrator's read of a final
 * output), with the same refusals as {@link readPayload}: no link, only a regular file of the
 * announced size.
 */
export async function readPayloadCopy(
  runId: string,
  key: string,
  options: Pick<ReadPayloadOptions, 'size' | 'segmentBytes' | 'dir'>,
): Promise<Buffer> {
  const path = payloadPath(runId, key, options.dir);
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw openError(err, path, key);
  }
  try {
    const size = checkPayloadFile(await handle.stat(), key, options);
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await handle.read(buf, off, size - off, off);
      if (bytesRead === 0) throw payloadError(`payload ${key} ended after ${off} of ${size} bytes`);
      off += bytesRead;
    }
    return buf;
  } finally {
    await handle.close();
  }
}

/** Deletes a payload file; false when it did not exist. */
export function deletePayload(runId: string, key: string, dir: string = payloadDir()): boolean {
  return unlinkQuietly(payloadPath(runId, key, dir));
}

/**
 * Deletes a payload file without blocking the caller (freeing a large tmpfs file takes a while);
 * resolves true when it existed. Never rejects.
 */
export function deletePayloadAsync(runId: string, key: string, dir: string = payloadDir()): Promise<boolean> {
  const path = payloadPath(runId, key, dir);
  return new Promise((resolve) => unlink(path, (err) => resolve(err === null)));
}

/**
 * Removes every payload file and pool segment of a run in `dir` (including ones never announced to
 * the orchestrator), and the run's private directories there with everything in them (this user's
 * only). Returns how many files went.
 */
export function sweepRunPayloads(runId: string, dir: string = payloadDir()): number {
  if (!RUN_ID_RE.test(runId)) return 0;
  const prefix = `${FILE_PREFIX}${runId}`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length + 1);
    const mark = name.charAt(prefix.length);
    // The rest must be a whole key: keys have no '-', so run "a" never sweeps run "a-b".
    // Pool segments go too, but are not counted: they are the pool, not payloads left behind.
    if ((mark === '-' || mark === SEGMENT_MARK) && isValidPayloadKey(rest))
      removed += unlinkQuietly(join(dir, name)) && mark === '-' ? 1 : 0;
    else if (mark === RUN_DIR_MARK && /^[0-9a-f]{24}$/.test(rest)) removed += removeRunPayloadDir(join(dir, name));
  }
  return removed;
}

/** Removes a run's private payload directory (this user's, a real directory); returns how many payload files (not pool segments) it held. */
export function removeRunPayloadDir(path: string): number {
  try {
    const st = lstatSync(path);
    const uid = process.getuid?.();
    if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) return 0;
    const files = readdirSync(path).filter((n) => !n.includes(SEGMENT_MARK)).length;
    rmSync(path, { recursive: true, force: true });
    return files;
  } catch {
    return 0;
  }
}

/** Payload files of a run that exist now (keys). */
export function listRunPayloads(runId: string, dir: string = payloadDir()): string[] {
  const prefix = `${FILE_PREFIX}${runId}-`;
  try {
    return readdirSync(dir)
      .filter((n) => n.startsWith(prefix) && isValidPayloadKey(n.slice(prefix.length)))
      .map((n) => n.slice(prefix.length));
  } catch {
    return [];
  }
}

function unlinkQuietly(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether an error says the file system is full (or the user's quota is). */
export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function noSpaceError(key: string, size: number, dir: string, cause: unknown): OmniError {
  return new OmniError(
    'OMNI_PAYLOAD_NO_SPACE',
    `no space left in the payload directory ${dir} for payload ${key} (${size} bytes): ${(cause as Error).message}`,
    {
      cause,
      hint: `free or enlarge the file system of ${dir} (docker: --shm-size), lower the stages' pool_bytes, or set ${PAYLOAD_DIR_ENV} to a larger one`,
    },
  );
}

function payloadError(message: string, cause?: unknown): OmniError {
  return new OmniError('OMNI_REQUEST_FAILED', message, {
    cause,
    hint: `payload files live in ${payloadDir()} (set ${PAYLOAD_DIR_ENV} to move them); see docs/protocol.md, "Payloads"`,
  });
}
