/**
 * The shared-memory payload store: one file per payload, `omnistage-<run_id>-<key>`, in /dev/shm
 * (a tmpfs: the bytes stay in memory) or, where that does not exist or is not writable, the OS
 * temp dir. The producer writes a file once; consumers read it by key; the orchestrator deletes
 * it when the last consumer acknowledged, and sweeps whatever is left of a run at teardown.
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
 *   SIGBUS). The store never does: files are written once, then only unlinked.
 * Without the addon (not built, `OMNISTAGE_SHM_MAP=0`, or a mapping that fails) it reads the file
 * into a fresh Buffer, as it does into `into`. {@link payloadReadPath} says which applies.
 *
 * Imported by the worker SDK: node built-ins only, synchronous calls (a tmpfs write or read is a
 * memory copy).
 */
import { accessSync, closeSync, constants, fstatSync, openSync, readdirSync, readSync, statSync, unlink, unlinkSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OmniError } from '../errors.js';
import { isValidPayloadKey } from './payload-ref.js';

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
  if (!isValidPayloadKey(key)) throw payloadError(`payload key ${JSON.stringify(key)} is not valid (letters, digits and _ only)`);
  return `${FILE_PREFIX}${runId}-${key}`;
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
    throw payloadError(`writing payload ${key} to ${dir} failed: ${(err as Error).message}`, err);
  }
  closeSync(fd);
  return path;
}

/** `0` turns the zero-copy read (mmap) off: readPayload then always copies with read(). Read on every call. */
export const SHM_MAP_ENV = 'OMNISTAGE_SHM_MAP';

interface ShmMapAddon {
  /** Maps the open file `fd` of exactly `size` bytes (checked again before mapping) into a Buffer. */
  mapPayload(fd: number, size: number): Buffer;
}

/** The addon once loaded; null when it is not there or does not load. */
let shmMap: ShmMapAddon | null | undefined;

function loadShmMap(): ShmMapAddon | null {
  const require = createRequire(import.meta.url);
  // dist/connectors/ -> dist/native/; the second serves these sources run as TypeScript (tests).
  for (const candidate of ['../native/shm_map.node', '../../dist/native/shm_map.node']) {
    try {
      const mod = require(candidate) as Partial<ShmMapAddon>;
      if (typeof mod.mapPayload === 'function') return mod as ShmMapAddon;
    } catch {
      // not built here (no compiler at build time, or another layout): try the next, then read()
    }
  }
  return null;
}

function shmMapper(): ShmMapAddon | undefined {
  if (process.env[SHM_MAP_ENV] === '0') return undefined;
  shmMap ??= loadShmMap();
  return shmMap ?? undefined;
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
  /** Payload directory (default {@link payloadDir}). */
  dir?: string;
  /**
   * Read into this buffer (at least the payload's size) instead of a fresh one: an engine that
   * reuses a staging buffer skips the page faults of new memory. The result is a view of it.
   */
  into?: Uint8Array;
}

/**
 * Reads a payload by key: a Buffer mapping the file (see the top of this module), or a copy in a
 * fresh buffer, or in `into`.
 */
export function readPayload(runId: string, key: string, options: ReadPayloadOptions = {}): Buffer {
  const path = payloadPath(runId, key, options.dir);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const gone = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw payloadError(
      gone
        ? `payload ${key} is gone (${path}): it was released (every consumer acknowledged it, or its request ended) or the run was swept`
        : `opening payload ${key} (${path}) failed: ${(err as Error).message}`,
      err,
    );
  }
  try {
    const size = fstatSync(fd).size;
    if (options.size !== undefined && size !== options.size) throw payloadError(`payload ${key} has ${size} bytes, its reference says ${options.size}`);
    const into = options.into;
    if (into !== undefined && into.byteLength < size) throw payloadError(`payload ${key} has ${size} bytes, the buffer to read it into only ${into.byteLength}`);
    const map = into === undefined ? shmMapper() : undefined;
    if (map !== undefined) {
      try {
        return map.mapPayload(fd, size);
      } catch {
        // e.g. the process's map count is exhausted: the copy below still works
      }
    }
    const buf = into === undefined ? Buffer.allocUnsafeSlow(size) : Buffer.from(into.buffer, into.byteOffset, size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) throw payloadError(`payload ${key} ended after ${off} of ${size} bytes`);
      off += n;
    }
    return buf;
  } catch (err) {
    throw err instanceof OmniError ? err : payloadError(`reading payload ${key} (${path}) failed: ${(err as Error).message}`, err);
  } finally {
    closeSync(fd);
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

/** Removes every payload file of a run (including ones never announced to the orchestrator). Returns how many. */
export function sweepRunPayloads(runId: string, dir: string = payloadDir()): number {
  if (!RUN_ID_RE.test(runId)) return 0;
  const prefix = `${FILE_PREFIX}${runId}-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    // The rest must be a whole key: keys have no '-', so run "a" never sweeps run "a-b".
    if (name.startsWith(prefix) && isValidPayloadKey(name.slice(prefix.length)) && unlinkQuietly(join(dir, name))) removed++;
  }
  return removed;
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

function payloadError(message: string, cause?: unknown): OmniError {
  return new OmniError('OMNI_REQUEST_FAILED', message, {
    cause,
    hint: `payload files live in ${payloadDir()} (set ${PAYLOAD_DIR_ENV} to move them); see docs/protocol.md, "Payloads"`,
  });
}
