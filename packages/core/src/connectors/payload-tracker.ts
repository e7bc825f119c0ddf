import { readFile } from 'node:fs/promises';
import { OmniError } from '../errors.js';
import { findPayloadRefs, isValidPayloadKey, mapPayloadRefs, type PayloadRef } from './payload-ref.js';
import { deletePayload, deletePayloadAsync, payloadDir, payloadPath, sweepRunPayloads } from './shm-store.js';

/** Holder name of a consumer stage. */
export const stageHolder = (stageId: number): string => `stage:${stageId}`;
/** Holder name of the user (the final output of a `final_output` stage). */
export const USER_HOLDER = 'user';

interface Entry {
  holders: Set<string>;
  requestId: string | null;
}

/** Trackers of live runs, so a replica's `payload_ack` (which names only the key) finds its run's tracker. */
const live = new Map<string, PayloadTracker>();
let exitHookInstalled = false;

/** The tracker of a run that is up, if any. */
export function payloadTrackerForRun(runId: string): PayloadTracker | undefined {
  return live.get(runId);
}

/**
 * The orchestrator's book of shared-memory payloads of one run. A payload a stage produced is held
 * by its consumers (the downstream stages, plus the user when the stage is a `final_output` stage);
 * each consumer releases its hold with `payload_ack` (or when the request ends), and the file is
 * deleted when the last hold goes. `sweep()` (teardown, or process exit) deletes whatever is left
 * of the run, including files a replica wrote but never announced. Only keys pass through here,
 * never the bytes (except {@link resolveForUser}, for outputs handed to the caller).
 */
export class PayloadTracker {
  readonly runId: string;
  readonly dir: string;
  readonly #entries = new Map<string, Entry>();
  readonly #pending = new Set<Promise<boolean>>();
  #closed = false;

  constructor(runId: string, options: { dir?: string } = {}) {
    this.runId = runId;
    this.dir = options.dir ?? payloadDir();
    live.set(runId, this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      // Last resort for an orchestrator that exits without teardown: synchronous, best effort.
      process.once('exit', () => {
        for (const t of live.values()) t.sweep();
      });
    }
  }

  /** Keys of the payloads held now. */
  get keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** Who still holds `key` (empty when it is not tracked). */
  holdersOf(key: string): string[] {
    return [...(this.#entries.get(key)?.holders ?? [])];
  }

  /**
   * Records that `ref` (an shm reference seen in a stage output) is held by `holders`; holders add
   * up when a key is registered again. With no holder at all the file is deleted now. Inline
   * references and invalid keys are ignored.
   */
  register(ref: PayloadRef, holders: readonly string[], requestId: string | null = null): void {
    if (ref.via !== 'shm' || !isValidPayloadKey(ref.key)) return;
    if (this.#closed) {
      deletePayload(this.runId, ref.key, this.dir);
      return;
    }
    let entry = this.#entries.get(ref.key);
    if (!entry) this.#entries.set(ref.key, (entry = { holders: new Set(), requestId }));
    for (const h of holders) entry.holders.add(h);
    if (entry.holders.size === 0) this.#drop(ref.key);
  }

  /**
   * Releases one hold of `key` (`holder` omitted: one hold, whichever). Deletes the file when no
   * hold is left. Returns true when the file was deleted by this call.
   */
  release(key: string, holder?: string): boolean {
    const entry = this.#entries.get(key);
    if (!entry) return false;
    if (holder === undefined) {
      const first = entry.holders.values().next();
      if (!first.done) entry.holders.delete(first.value);
    } else if (!entry.holders.delete(holder)) {
      return false;
    }
    if (entry.holders.size > 0) return false;
    this.#drop(key);
    return true;
  }

  /** Releases every hold on the payloads registered for a request (it ended: nobody reads them any more). */
  releaseRequest(requestId: string): void {
    for (const [key, entry] of this.#entries) if (entry.requestId === requestId) this.#drop(key);
  }

  /**
   * The caller's copy of a final output: shm references become inline ones (the bytes are read
   * here: final outputs must reach the user), and the user's hold on each is released.
   */
  async resolveForUser(data: unknown): Promise<unknown> {
    if (findPayloadRefs(data).every((r) => r.via !== 'shm')) return data;
    return mapPayloadRefs(data, async (ref) => {
      if (ref.via !== 'shm') return ref;
      let bytes: Buffer;
      try {
        bytes = await readFile(payloadPath(this.runId, ref.key, this.dir));
      } catch (err) {
        throw new OmniError('OMNI_REQUEST_FAILED', `the final output payload ${ref.key} cannot be read: ${(err as Error).message}`, {
          cause: err,
          hint: 'the producing replica announced a payload file that does not exist',
        });
      } finally {
        this.release(ref.key, USER_HOLDER);
      }
      return { ...ref, via: 'inline', data_base64: bytes.toString('base64') } satisfies PayloadRef;
    });
  }

  /** Deletes every payload file of the run, tracked or not. Idempotent. Returns how many files went. */
  sweep(): number {
    this.#entries.clear();
    return sweepRunPayloads(this.runId, this.dir);
  }

  /** Sweeps and stops tracking: later registrations delete their file at once. */
  close(): number {
    this.#closed = true;
    const n = this.sweep();
    if (live.get(this.runId) === this) live.delete(this.runId);
    return n;
  }

  #drop(key: string): void {
    this.#entries.delete(key);
    // Off the event loop: freeing a large tmpfs file takes milliseconds. Teardown's sweep is synchronous.
    const done = deletePayloadAsync(this.runId, key, this.dir);
    this.#pending.add(done);
    void done.finally(() => this.#pending.delete(done));
  }

  /** Resolves once every deletion started so far finished (tests, teardown). */
  async settled(): Promise<void> {
    await Promise.all([...this.#pending]);
  }
}
