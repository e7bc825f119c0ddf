/**
 * A consumer's mappings of pool segments, made once per segment and reused for every payload that
 * lands in it: a `getPayload` of a pooled payload is then a lock and a view, with no `mmap` and no
 * page faults (the pages the producer rewrote in place are already mapped).
 *
 * Each view is a Buffer of its own (sub-views keep it alive) that holds one use of its segment;
 * while a segment has uses, the consumer holds its shared lock, so the producer cannot rewrite it
 * (see shm-pool.ts). The mapping is private: a consumer that writes into a view gets private
 * copies of those pages, which would hide the next payload's bytes; such a mapping is dropped
 * (`segmentWritten`) and the segment mapped afresh.
 *
 * Imported by the worker SDK: node built-ins only.
 */
import { closeSync, statSync, type Stats } from 'node:fs';
import type { SegmentHandle, ShmNative } from './shm-native.js';

/** One process's (one connector instance's) segment mappings, by the segment's device and inode. */
export class SegmentMappings {
  readonly #native: ShmNative;
  readonly #byFile = new Map<string, SegmentHandle>();

  constructor(native: ShmNative) {
    this.#native = native;
  }

  /**
   * The first `size` bytes of the segment that `fd` (open on `path`, stat `st`, of `segmentBytes`
   * bytes) is, as a view. Takes `fd` over (closes it, or a new mapping keeps it), even when it
   * throws. Undefined when the key no longer names that segment or the producer is rewriting it
   * (the payload is gone).
   */
  view(fd: number, st: Stats, path: string, size: number, segmentBytes: number): Buffer | undefined {
    const id = `${st.dev}:${st.ino}`;
    const cached = this.#byFile.get(id);
    if (cached !== undefined) {
      const usable = this.#native.segmentAcquire(cached);
      if (!usable || !sameFile(path, st)) {
        closeSync(fd);
        return usable ? this.#refuse(cached) : undefined;
      }
      if (this.#native.segmentWritten(cached, size) === 0) {
        closeSync(fd);
        return this.#viewOf(cached, size);
      }
      // Written by this consumer, or pagemap unreadable: map afresh (older views keep the old mapping).
      this.#native.segmentRelease(cached);
      this.#byFile.delete(id);
    }
    let segment: SegmentHandle;
    try {
      segment = this.#native.segmentMap(fd, segmentBytes); // owns fd from here
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (!this.#native.segmentAcquire(segment)) return undefined;
    if (!sameFile(path, st)) return this.#refuse(segment);
    this.#byFile.set(id, segment);
    return this.#viewOf(segment, size);
  }

  /** Forgets every mapping (each is unmapped once its last view is collected). */
  clear(): void {
    this.#byFile.clear();
  }

  #viewOf(segment: SegmentHandle, size: number): Buffer {
    try {
      return this.#native.segmentView(segment, size);
    } catch (err) {
      this.#native.segmentRelease(segment);
      throw err;
    }
  }

  #refuse(segment: SegmentHandle): undefined {
    this.#native.segmentRelease(segment);
    return undefined;
  }
}

/** True when `path` still names the file `st` describes (a released key may name nothing, or be reused). */
function sameFile(path: string, st: Stats): boolean {
  const now = statSync(path, { throwIfNoEntry: false });
  return now !== undefined && now.ino === st.ino && now.dev === st.dev;
}
