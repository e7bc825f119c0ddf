/**
 * The optional native addon `dist/native/shm_map.node` (native/shm_map.c, built by
 * scripts/build-native.mjs): maps payload files into Buffers (zero copy) and takes the file locks
 * that keep a pool segment from being rewritten while a consumer still maps it.
 *
 * Imported by the worker SDK: node built-ins only.
 */
import { createRequire } from 'node:module';

/** `0` turns the zero-copy read (mmap) off: readPayload then always copies with read(). Read on every call. */
export const SHM_MAP_ENV = 'OMNISTAGE_SHM_MAP';

/**
 * `1` leaves the addon unloaded, as on a machine without a C compiler: reads copy, producers write
 * a file per payload (no pool), no locks. Read once, when the addon would first be loaded; the test
 * suite runs the connector tests a second time with it so the fallback stays tested.
 */
export const NO_NATIVE_ENV = 'OMNISTAGE_NO_NATIVE';

/** What the addon exports. */
export interface ShmNative {
  /** Maps the open file `fd` of exactly `size` bytes (checked again before mapping) into a Buffer. */
  mapPayload(fd: number, size: number): Buffer;
  /** The producer's writable view of its segment `fd` of exactly `size` bytes (MAP_SHARED); the caller closes `fd`. */
  mapShared(fd: number, size: number): Buffer;
  /** Maps the first `size` bytes of `fd` (at least that long); the Buffer owns `fd` and closes it when freed. */
  mapHeld(fd: number, size: number): Buffer;
  /** flock, non-blocking: false when another open file holds a conflicting lock. */
  lock(fd: number, exclusive: boolean): boolean;
  unlock(fd: number): void;
  /**
   * Sizes the file to `size` bytes and allocates its pages (posix_fallocate), so a full file system
   * is an error (code `ENOSPC`/`EDQUOT`) now rather than a SIGBUS when a mapped page is written.
   */
  reserve(fd: number, size: number): void;
  /** Maps a whole pool segment once (it owns `fd`); see shm-mappings.ts. */
  segmentMap(fd: number, size: number): SegmentHandle;
  /** One more use; the first takes the shared lock. False: the producer holds it (being rewritten). */
  segmentAcquire(segment: SegmentHandle): boolean;
  /** One use less; the last drops the lock. */
  segmentRelease(segment: SegmentHandle): void;
  /** Pages of the first `length` bytes this process wrote (private copies); -1 when unknown. */
  segmentWritten(segment: SegmentHandle, length: number): number;
  /** A Buffer of the first `length` bytes; takes over one acquired use until it is freed. */
  segmentView(segment: SegmentHandle, length: number): Buffer;
}

/** A mapped segment, opaque to JS. */
export type SegmentHandle = { readonly __segment: unique symbol };

/** The addon once loaded; null when it is not there or does not load. */
let loaded: ShmNative | null | undefined;

function load(): ShmNative | null {
  if (process.env[NO_NATIVE_ENV] === '1') return null;
  const require = createRequire(import.meta.url);
  // dist/connectors/ -> dist/native/; the second serves these sources run as TypeScript (tests).
  for (const candidate of ['../native/shm_map.node', '../../dist/native/shm_map.node']) {
    try {
      const mod = require(candidate) as Partial<ShmNative>;
      if (
        typeof mod.mapPayload === 'function' &&
        typeof mod.segmentView === 'function' &&
        typeof mod.mapShared === 'function' &&
        typeof mod.reserve === 'function'
      )
        return mod as ShmNative;
    } catch {
      // not built here (no compiler at build time, or another layout): try the next
    }
  }
  return null;
}

/** The addon, for its locks (whatever {@link SHM_MAP_ENV} says); undefined when it is not built. */
export function shmNative(): ShmNative | undefined {
  loaded ??= load();
  return loaded ?? undefined;
}

/** The addon for mapping: undefined when it is not built or {@link SHM_MAP_ENV} is `0`. */
export function shmMapper(): ShmNative | undefined {
  return process.env[SHM_MAP_ENV] === '0' ? undefined : shmNative();
}
