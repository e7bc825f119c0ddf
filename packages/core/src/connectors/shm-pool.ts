/**
 * A producer replica's pool of shared-memory segments: files in the run's payload directory that
 * are created once, stay resident and are rewritten for later payloads, so storing a payload is a
 * memcpy into pages that already exist instead of a fresh tmpfs file (whose page allocation is most
 * of the cost of a large payload).
 *
 * A payload in a segment is a hard link `omnistage-<run>-<key>` to the segment file: consumers read
 * it by key as any payload file, the orchestrator frees it by unlinking the key (its hold book does
 * not know pools exist). The segment is free again when both hold:
 * - its link count is back to 1 (no key names it: every holder acknowledged, or the request ended);
 * - an exclusive, non-blocking lock on it succeeds: every consumer Buffer that maps it (each holds
 *   a shared lock until it is garbage-collected, see readPayload) is gone, so rewriting it can
 *   never change bytes a live Buffer shows.
 * The producer holds the exclusive lock while it writes and links, so a consumer that finds the key
 * meanwhile cannot map it half written. It never locks a segment a key still names (it reads the
 * link count first): a consumer's shared lock fails only on a segment whose key was released.
 *
 * Sizes: a payload takes a segment of the smallest power of two that holds it (at least
 * {@link MIN_SEGMENT_BYTES}), or a larger free one. The segments of one replica never add up to more
 * than `pool_bytes`; a payload that finds no free segment and no room, or that is larger than
 * `pool_max_segment_bytes`, is written to a file of its own (as without a pool).
 *
 * Imported by the worker SDK: node built-ins only.
 */
import { closeSync, constants, fstatSync, linkSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { shmNative, type ShmNative } from './shm-native.js';
import { isNoSpace, payloadPath, segmentFileName } from './shm-store.js';

/** Smallest segment: below it a payload costs too little for reuse to matter. */
export const MIN_SEGMENT_BYTES = 64 * 1024;
/** Default `pool_bytes`: what one producer replica's segments may add up to. */
export const DEFAULT_POOL_BYTES = 256 * 1024 * 1024;
/** Default `pool_max_segment_bytes`: larger payloads get a file of their own. */
export const DEFAULT_POOL_MAX_SEGMENT_BYTES = 64 * 1024 * 1024;

/** How a pool is sized (from the stage's `connector_config`). */
export interface ShmPoolLimits {
  /** Upper bound of the sum of the segments' sizes (0: no pool). */
  poolBytes: number;
  /** The largest segment. */
  maxSegmentBytes: number;
}

/** The pool limits in a `connector_config` (`pool_bytes`, `pool_max_segment_bytes`), defaults for what is missing. */
export function poolLimitsOf(config: Readonly<Record<string, unknown>> | undefined): ShmPoolLimits {
  const count = (v: unknown, d: number): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : d);
  return {
    poolBytes: count(config?.['pool_bytes'], DEFAULT_POOL_BYTES),
    maxSegmentBytes: count(config?.['pool_max_segment_bytes'], DEFAULT_POOL_MAX_SEGMENT_BYTES),
  };
}

/** The segment size a payload of `size` bytes takes. */
export function segmentSizeFor(size: number): number {
  let s = MIN_SEGMENT_BYTES;
  while (s < size) s *= 2;
  return s;
}

interface Segment {
  readonly fd: number;
  readonly path: string;
  readonly bytes: number;
  /** The segment mapped shared and writable: a write is a memcpy (a third of `write`'s time). */
  readonly memory: Buffer | undefined;
}

/** One producer's segments. */
export class ShmPool {
  readonly #runId: string;
  readonly #dir: string;
  readonly #tag: string;
  readonly #limits: ShmPoolLimits;
  readonly #native: ShmNative | undefined;
  /** Sorted by size, so the first free one that fits is the smallest. */
  readonly #segments: Segment[] = [];
  #bytes = 0;

  /** `tag`: unique in the run (the replica's), names the segments. */
  constructor(runId: string, dir: string, tag: string, limits: ShmPoolLimits) {
    this.#runId = runId;
    this.#dir = dir;
    this.#tag = tag;
    this.#limits = limits;
    // Without the addon there are no locks, and a consumer's mapping could not be protected.
    this.#native = limits.poolBytes > 0 ? shmNative() : undefined;
  }

  /** Bytes of all segments now (never above `poolBytes`). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Stores `bytes` under `key` in a segment and returns the segment's size (the reference's
   * `segment_bytes`), or undefined when the pool cannot take it (the caller writes a file).
   */
  write(key: string, bytes: Uint8Array): number | undefined {
    const native = this.#native;
    if (native === undefined || bytes.byteLength > this.#limits.maxSegmentBytes) return undefined;
    const segment = this.#acquire(native, segmentSizeFor(bytes.byteLength));
    if (segment === undefined) return undefined;
    try {
      if (segment.memory !== undefined) segment.memory.set(bytes);
      else
        for (let off = 0; off < bytes.byteLength;)
          off += writeSync(segment.fd, bytes, off, bytes.byteLength - off, off);
      linkSync(segment.path, payloadPath(this.#runId, key, this.#dir)); // an existing key: EEXIST, never overwritten
      return segment.bytes;
    } finally {
      native.unlock(segment.fd);
    }
  }

  /** A free segment of at least `size` bytes, locked exclusively; a new one while there is room. */
  #acquire(native: ShmNative, size: number): Segment | undefined {
    for (const s of this.#segments) {
      // The link count first, without the lock: a segment a key still names is never locked here,
      // not even for an instant, because a consumer whose non-blocking shared lock met that
      // instant would read its live payload as released ("gone"). Only this producer adds links,
      // so a count of 1 stays 1 until it links; the lock then only waits out consumers' views.
      if (s.bytes < size || fstatSync(s.fd).nlink !== 1 || !native.lock(s.fd, true)) continue;
      if (fstatSync(s.fd).nlink === 1) return s;
      native.unlock(s.fd);
    }
    if (this.#bytes + size > this.#limits.poolBytes) return undefined;
    const path = join(this.#dir, segmentFileName(this.#runId, `${this.#tag}_${this.#segments.length.toString(36)}`));
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      // Reserved, not just sized: a page of a sparse segment that tmpfs cannot supply when the
      // mapping first writes it is a SIGBUS for the whole replica, never an error.
      native.reserve(fd, size);
      if (!native.lock(fd, true)) throw new Error(`a new pool segment ${path} is locked by someone else`);
    } catch (err) {
      closeSync(fd);
      unlinkSync(path);
      // No room for a segment: the payload may still fit a file of its own (its exact size), which
      // fails with OMNI_PAYLOAD_NO_SPACE where it does not.
      if (isNoSpace(err)) return undefined;
      throw err;
    }
    let memory: Buffer | undefined;
    try {
      memory = native.mapShared(fd, size);
    } catch {
      // e.g. the map count is exhausted: write() still works
    }
    const segment = { fd, path, bytes: size, memory };
    this.#segments.push(segment);
    this.#segments.sort((a, b) => a.bytes - b.bytes);
    this.#bytes += size;
    return segment;
  }

  /** Closes the segments' fds (the files go with the run's directory). */
  close(): void {
    for (const s of this.#segments.splice(0)) closeSync(s.fd);
    this.#bytes = 0;
  }
}
