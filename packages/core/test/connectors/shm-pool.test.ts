import { readdirSync, unlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PayloadRef } from '../../src/connectors/payload-ref.js';
import { ShmConnector } from '../../src/connectors/shm-connector.js';
import { MIN_SEGMENT_BYTES, poolLimitsOf, segmentSizeFor, ShmPool } from '../../src/connectors/shm-pool.js';
import { SegmentMappings } from '../../src/connectors/shm-mappings.js';
import { shmNative } from '../../src/connectors/shm-native.js';
import { createRunPayloadDir, payloadPath, payloadReadPath, readPayload } from '../../src/connectors/shm-store.js';
import { cleanupTempDirs, requireBuilt, tempDir } from '../runtime/helpers.js';
import { addonMissing, needsAddon } from './addon.js';

// A real collection, so a consumer's dropped Buffer really lets go of its segment.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await turn();
  }
}

const RUN = 'run-pool';
let dir: string;
const pools: ShmPool[] = [];
beforeAll(() => requireBuilt('connectors/shm-store.ts')); // the addon (locks, mapping) is built with dist
beforeEach(async () => {
  dir = createRunPayloadDir(RUN, await tempDir());
});
afterEach(async () => {
  for (const p of pools.splice(0)) p.close();
  await rm(dir, { recursive: true, force: true });
  // The run's directory lives inside a temp dir of its own: remove that too.
  await cleanupTempDirs();
});

function pool(poolBytes: number, maxSegmentBytes = 1024 * 1024): ShmPool {
  const p = new ShmPool(RUN, dir, 'ab12', { poolBytes, maxSegmentBytes });
  pools.push(p);
  return p;
}

const fill = (size: number, byte: number): Buffer => Buffer.alloc(size, byte);
const segments = (): string[] => readdirSync(dir).filter((n) => n.includes('='));
/** What the orchestrator does when the last holder acknowledged. */
const release = (key: string): void => unlinkSync(payloadPath(RUN, key, dir));
const read = (key: string, size: number, segmentBytes: number): Buffer =>
  readPayload(RUN, key, { dir, size, segmentBytes });

describe('shared-memory pool sizes', () => {
  it('reads the sizes from connector_config, rounds payloads up to power-of-two segments', () => {
    expect(poolLimitsOf({ pool_bytes: 1000, pool_max_segment_bytes: 10 })).toEqual({
      poolBytes: 1000,
      maxSegmentBytes: 10,
    });
    expect(poolLimitsOf({ pool_bytes: -1 }).poolBytes).toBe(256 * 1024 * 1024);
    expect(segmentSizeFor(1)).toBe(MIN_SEGMENT_BYTES);
    expect(segmentSizeFor(MIN_SEGMENT_BYTES + 1)).toBe(2 * MIN_SEGMENT_BYTES);
  });
});

// The pool exists only with the addon (its locks keep a segment from reuse while a consumer maps it).
describe.skipIf(addonMissing !== undefined)(needsAddon('shared-memory pool'), () => {
  it('reuses a segment once its key is released and no consumer maps it, never before', async () => {
    expect(payloadReadPath()).toBe('mmap');
    const p = pool(4 * MIN_SEGMENT_BYTES);
    expect(p.write('k1', fill(1000, 1))).toBe(MIN_SEGMENT_BYTES);
    expect(p.write('k2', fill(1000, 2))).toBe(MIN_SEGMENT_BYTES); // k1 still linked: a second segment
    expect(segments()).toHaveLength(2);
    release('k2');
    expect(p.write('k3', fill(1000, 3))).toBe(MIN_SEGMENT_BYTES); // k2's segment again
    expect(segments()).toHaveLength(2);
    expect(p.bytes).toBe(2 * MIN_SEGMENT_BYTES);
    expect(read('k1', 1000, MIN_SEGMENT_BYTES).equals(fill(1000, 1))).toBe(true);
    expect(read('k3', 1000, MIN_SEGMENT_BYTES).equals(fill(1000, 3))).toBe(true);
  });

  it("never rewrites a segment under a consumer's live Buffer, even after its ack", async () => {
    const p = pool(2 * MIN_SEGMENT_BYTES);
    p.write('a', fill(5000, 7));
    let held: Buffer | undefined = read('a', 5000, MIN_SEGMENT_BYTES);
    release('a'); // acknowledged, but the consumer keeps its Buffer
    expect(p.write('b', fill(5000, 8))).toBe(MIN_SEGMENT_BYTES); // a new segment, not a's
    release('b');
    p.write('c', fill(5000, 9)); // b's segment
    expect(p.write('d', fill(5000, 10))).toBeUndefined(); // full: a's segment is still mapped, no room for a third
    expect(held.equals(fill(5000, 7))).toBe(true); // the live Buffer still shows its own payload
    held = undefined;
    await collect(); // the Buffer is gone, and its lock with it
    expect(p.write('d', fill(5000, 10))).toBe(MIN_SEGMENT_BYTES);
    expect(segments()).toHaveLength(2);
    expect(held).toBeUndefined();
  });

  it('stays within pool_bytes; a payload larger than a segment or than the room left gets undefined (a file of its own)', () => {
    const p = pool(3 * MIN_SEGMENT_BYTES, 2 * MIN_SEGMENT_BYTES);
    expect(p.write('big', fill(2 * MIN_SEGMENT_BYTES + 1, 1))).toBeUndefined();
    expect(p.write('m', fill(MIN_SEGMENT_BYTES + 1, 1))).toBe(2 * MIN_SEGMENT_BYTES);
    expect(p.write('n', fill(MIN_SEGMENT_BYTES + 1, 1))).toBeUndefined(); // 4 segments' worth > 3
    expect(p.write('o', fill(10, 1))).toBe(MIN_SEGMENT_BYTES);
    expect(p.bytes).toBe(3 * MIN_SEGMENT_BYTES);
    release('m');
    expect(p.write('q', fill(10, 2))).toBe(2 * MIN_SEGMENT_BYTES); // a larger free segment serves a small payload
    expect(read('q', 10, 2 * MIN_SEGMENT_BYTES).equals(fill(10, 2))).toBe(true);
    expect(() => read('q', 10, MIN_SEGMENT_BYTES)).toThrow(/a segment of 65536/); // the size must match the reference
  });

  it("a producer looking for a free segment never locks one a live key names, so a consumer reading that key meanwhile finds it (not 'gone')", () => {
    // The interleaving that failed under admission (bench/parked.mjs, 1,000+ requests): the producer
    // took its exclusive lock on every segment to test whether it was free, and a consumer whose
    // non-blocking shared lock came in that instant read its live payload as released. Here the
    // consumer reads at exactly that instant: from inside the producer's lock call.
    const native = shmNative()!;
    const lock = native.lock;
    const reads: string[] = [];
    const p = pool(4 * MIN_SEGMENT_BYTES);
    p.write('live', fill(1000, 5));
    native.lock = (fd: number, exclusive: boolean): boolean => {
      const got = lock(fd, exclusive);
      if (got && exclusive) {
        for (const mappings of [undefined, new SegmentMappings(native)]) {
          try {
            const bytes = readPayload(RUN, 'live', {
              dir,
              size: 1000,
              segmentBytes: MIN_SEGMENT_BYTES,
              ...(mappings ? { mappings } : {}),
            });
            reads.push(bytes.equals(fill(1000, 5)) ? 'ok' : 'wrong bytes');
          } catch (err) {
            reads.push((err as Error).message);
          }
        }
      }
      return got;
    };
    try {
      expect(p.write('next', fill(1000, 6))).toBe(MIN_SEGMENT_BYTES);
    } finally {
      native.lock = lock;
    }
    expect(reads.length).toBeGreaterThan(0); // the producer did lock (the new segment)
    expect(reads.filter((r) => r !== 'ok')).toEqual([]);
    expect(read('next', 1000, MIN_SEGMENT_BYTES).equals(fill(1000, 6))).toBe(true);
  });

  it('a released key reads as gone once its segment holds another payload', () => {
    const p = pool(MIN_SEGMENT_BYTES);
    p.write('old', fill(100, 1));
    release('old');
    p.write('new', fill(100, 2));
    expect(() => read('old', 100, MIN_SEGMENT_BYTES)).toThrow(/payload old is gone/);
  });
});

describe.skipIf(addonMissing !== undefined)(
  needsAddon("a consumer's segment mappings (one per segment, payloads as views)"),
  () => {
    function pair(poolBytes: number): { producer: ShmConnector; consumer: ShmConnector } {
      const producer = new ShmConnector(
        { runId: RUN, role: 'worker' },
        { dir, thresholdBytes: 0, pool: { poolBytes, maxSegmentBytes: 1024 * 1024, tag: 'cd34' } },
      );
      const consumer = new ShmConnector({ runId: RUN, role: 'worker' }, { dir });
      pools.push({ close: () => (producer.close(), consumer.close()) } as unknown as ShmPool);
      return { producer, consumer };
    }
    const put = (c: ShmConnector, key: string, bytes: Buffer): PayloadRef => c.put(bytes, { key, meta: {} });

    it('reads successive payloads of one segment through one mapping, each view keeping its bytes while it lives', async () => {
      const { producer, consumer } = pair(MIN_SEGMENT_BYTES);
      const a = consumer.get(put(producer, 'a', fill(3000, 1))) as Buffer;
      const sub = a.subarray(0, 10); // a sub-view keeps the payload's use (and lock) as its parent does
      release('a');
      expect(producer.put(fill(3000, 2), { key: 'b', meta: {} }).segment_bytes).toBeUndefined(); // pool full, segment held
      let kept: Buffer | undefined = a;
      kept = undefined;
      await collect();
      expect(producer.put(fill(10, 9), { key: 'c', meta: {} }).segment_bytes).toBeUndefined(); // the sub-view still holds it
      expect(sub.equals(fill(10, 1))).toBe(true);
      expect(kept).toBeUndefined();
    });

    it('maps afresh after the consumer wrote into a view (its private copy must not hide the next payload)', async () => {
      const { producer, consumer } = pair(MIN_SEGMENT_BYTES);
      let a: Buffer | undefined = consumer.get(put(producer, 'a', fill(8192, 1))) as Buffer;
      a.fill(0xee); // copy-on-write: private pages in the consumer's mapping
      a = undefined;
      release('a');
      await collect();
      const ref = put(producer, 'b', fill(8192, 2));
      expect(ref.segment_bytes).toBe(MIN_SEGMENT_BYTES); // the same segment, rewritten
      expect((consumer.get(ref) as Buffer).equals(fill(8192, 2))).toBe(true);
    });
  },
);
