/**
 * The built-in `SharedMemoryConnector` class (references `via: 'shm'`), behind the same
 * {@link PayloadConnector} interface as the classes plugins define:
 * - `put` (a producer replica): inline at or below the stage's `shm_threshold_bytes`, else into a
 *   segment of the replica's pool (shm-pool.ts) or, when the pool cannot take it, a file of its own;
 * - `get` (a consumer replica): the file by key, mapped without a copy where the addon is built (a
 *   pool segment once, its payloads views of that mapping, see shm-mappings.ts); the
 *   orchestrator (a final output for the caller): a copy, read without blocking;
 * - `release` (the orchestrator, on the last hold): unlinks the key, which frees a file or returns
 *   a segment to its pool;
 * - `sweep` (teardown): removes every file of the run, and the run's private directory if it owns it.
 *
 * Imported by the worker SDK: node built-ins only.
 */
import type { PayloadConnector, PayloadConnectorContext, PayloadPutContext } from './payload-connector.js';
import { inlinePayloadRef, type PayloadRef } from './payload-ref.js';
import { SegmentMappings } from './shm-mappings.js';
import { shmNative } from './shm-native.js';
import { ShmPool, type ShmPoolLimits } from './shm-pool.js';
import {
  deletePayload,
  deletePayloadAsync,
  readPayload,
  readPayloadCopy,
  removeRunPayloadDir,
  sweepRunPayloads,
  writePayload,
} from './shm-store.js';

/** The `via` of the class's stored references. */
export const SHM_VIA = 'shm';

/** What the shared-memory class needs besides the common context. */
export interface ShmConnectorOptions {
  /** The run's payload directory (the welcome's `payload_dir`, the tracker's `dir`). */
  readonly dir: string;
  /** Payloads of at most this many bytes go inline (producers). */
  readonly thresholdBytes?: number;
  /** The producer's pool (absent: every payload gets a file of its own). */
  readonly pool?: ShmPoolLimits & { readonly tag: string };
  /** `sweep` removes `dir` itself (the orchestrator created it for the run). */
  readonly ownsDir?: boolean;
}

/** The built-in shared-memory connector; `sweepNow` is synchronous (a process-exit hook may run it). */
export class ShmConnector implements PayloadConnector {
  readonly #runId: string;
  readonly #options: ShmConnectorOptions;
  readonly #pool: ShmPool | undefined;
  readonly #copies: boolean;
  /** A consumer's mappings of pool segments (none without the addon). */
  readonly #mappings: SegmentMappings | undefined;

  constructor(context: Pick<PayloadConnectorContext, 'runId' | 'role'>, options: ShmConnectorOptions) {
    this.#runId = context.runId;
    this.#options = options;
    this.#copies = context.role === 'orchestrator';
    this.#pool =
      options.pool === undefined ? undefined : new ShmPool(context.runId, options.dir, options.pool.tag, options.pool);
    const native = this.#copies ? undefined : shmNative();
    this.#mappings = native === undefined ? undefined : new SegmentMappings(native);
  }

  /** The pool's bytes now (0 without one). */
  get poolBytes(): number {
    return this.#pool?.bytes ?? 0;
  }

  put(bytes: Uint8Array, { key, meta }: PayloadPutContext): PayloadRef {
    if (bytes.byteLength <= (this.#options.thresholdBytes ?? -1)) return inlinePayloadRef(bytes, meta);
    const segment = this.#pool?.write(key, bytes);
    if (segment === undefined) writePayload(this.#runId, key, bytes, this.#options.dir);
    return {
      $payload: 1,
      key,
      size: bytes.byteLength,
      via: SHM_VIA,
      ...meta,
      ...(segment === undefined ? {} : { segment_bytes: segment }),
    };
  }

  get(ref: PayloadRef, into?: Uint8Array): Promise<Buffer> | Buffer {
    const segmentBytes = ref.segment_bytes;
    const options = { size: ref.size, dir: this.#options.dir, ...(segmentBytes === undefined ? {} : { segmentBytes }) };
    if (this.#copies) return readPayloadCopy(this.#runId, ref.key, options);
    const mappings = this.#mappings;
    return readPayload(this.#runId, ref.key, {
      ...options,
      ...(into === undefined ? {} : { into }),
      ...(mappings === undefined ? {} : { mappings }),
    });
  }

  async release(ref: PayloadRef): Promise<void> {
    // Off the event loop: freeing a large tmpfs file takes milliseconds.
    await deletePayloadAsync(this.#runId, ref.key, this.#options.dir);
  }

  /** Frees a payload now (synchronous: a registration after teardown must not leave a file behind). */
  releaseNow(ref: PayloadRef): void {
    deletePayload(this.#runId, ref.key, this.#options.dir);
  }

  sweep(): void {
    this.sweepNow();
  }

  /** Removes every file of the run now; returns how many. */
  sweepNow(): number {
    const n = sweepRunPayloads(this.#runId, this.#options.dir);
    return this.#options.ownsDir === true ? n + removeRunPayloadDir(this.#options.dir) : n;
  }

  close(): void {
    this.#pool?.close();
    this.#mappings?.clear();
  }
}
