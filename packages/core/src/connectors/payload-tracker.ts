import { OmniError } from '../errors.js';
import { atProcessExit } from '../process/exit-tasks.js';
import {
  connectorModuleUrl,
  createPayloadConnectorInstance,
  type PayloadConnector,
  type RunConnector,
} from './payload-connector.js';
import { findPayloadRefs, isStoredPayload, isValidPayloadKey, mapPayloadRefs, type PayloadRef } from './payload-ref.js';
import type { PayloadPlane } from './payload-fetch.js';
import { ShmConnector, SHM_VIA } from './shm-connector.js';
import { createRunPayloadDir, payloadDir } from './shm-store.js';

/** Holder name of a consumer stage. */
export const stageHolder = (stageId: number): string => `stage:${stageId}`;
/** Holder name of the user (the final output of a `final_output` stage). */
export const USER_HOLDER = 'user';

interface Entry {
  ref: PayloadRef;
  holders: Set<string>;
  requestId: string | null;
}

/** Options of a {@link PayloadTracker}. */
export interface PayloadTrackerOptions {
  /**
   * Payload directory of the shm files, used as it is (the caller keeps it private and removes it).
   * Default: a private directory the tracker creates in `baseDir` and removes at teardown.
   */
  dir?: string;
  /** Where the run's private payload directory is created (default {@link payloadDir}). */
  baseDir?: string;
  /** The plugin connector classes this run uses: their payloads are released and swept through them. */
  connectors?: readonly RunConnector[];
  /** Told about a plugin connector's failure to release or sweep (the run goes on). */
  onError?: (err: unknown, what: string) => void;
  /** Told when a payload starts being held, is freed, and what teardown swept (the run's events). */
  onEvent?: (event: PayloadEvent) => void;
}

/** Why a payload's bytes were freed. */
export type PayloadFreeReason = 'acknowledged' | 'request_ended' | 'unheld' | 'teardown' | 'host_lost';

/** Head mode: how the head reads (final outputs) and frees payloads stored on other hosts. */
export interface RemotePayloads {
  /** The head's own host: references from it are local files. */
  readonly hostId: string;
  /** `get` fetches from the reference's origin host, `release` asks that host to free it. */
  readonly connector: PayloadConnector;
}

/** What the tracker reports (emitted as `payload:*` events of the run). */
export type PayloadEvent =
  | {
      type: 'payload:stored';
      key: string;
      via: string;
      size: number;
      stage_id: number | null;
      request_id: string | null;
      holders: string[];
    }
  | { type: 'payload:freed'; key: string; via: string; reason: PayloadFreeReason }
  | { type: 'payload:swept'; files: number };

/** How long teardown waits for a plugin connector's releases, and then for its sweep. */
const CLOSE_LIMIT_MS = 5_000;

/** True when `work` (which never rejects) settled within `ms`. */
async function withinMs(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = work.then(() => true);
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The orchestrator's hold book of the stored payloads of one run, whoever stores their bytes (the
 * built-in shared-memory class, or a plugin's connector class the run uses). A payload a stage
 * produced is held by its consumers (the downstream stages, plus the user when the stage is a
 * `final_output` stage); each consumer releases its hold with `payload_ack` (or when the request
 * ends), and the last hold going is when the bytes are freed: the class's `release`. `close()`
 * (teardown) frees whatever is left of the run, including payloads a replica stored but never
 * announced (each class's `sweep`); a process-exit hook does the same for shared memory. Only
 * references pass through here, never the bytes (except {@link resolveForUser}, for outputs
 * handed to the caller). Whoever routes payload acks gets the tracker passed in: there is no
 * registry of trackers.
 */
export class PayloadTracker {
  readonly runId: string;
  readonly dir: string;
  /** Plugin connector classes of the run: name → module URL (what replicas get in `welcome`). */
  readonly connectorModules: Readonly<Record<string, string>>;
  readonly #entries = new Map<string, Entry>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #instances = new Map<string, Promise<PayloadConnector>>();
  readonly #stageConfigs = new Map<string, RunConnector['stageConfigs']>();
  readonly #onError: (err: unknown, what: string) => void;
  readonly #onEvent: (event: PayloadEvent) => void;
  /** The built-in shared-memory class, kept typed: its sweep is synchronous (the exit hook). */
  readonly #shm: ShmConnector;
  /** Withdraws the last resort for an orchestrator that exits without teardown (a synchronous sweep). */
  readonly #forgetAtExit: () => void;
  #closed = false;
  #remote: RemotePayloads | undefined;
  /** Head mode: the data plane told to every replica of the run in its welcome (set before they start). */
  plane: PayloadPlane | undefined;

  constructor(runId: string, options: PayloadTrackerOptions = {}) {
    this.runId = runId;
    this.dir = options.dir ?? createRunPayloadDir(runId, options.baseDir ?? payloadDir());
    const connectors = options.connectors ?? [];
    this.connectorModules = Object.freeze(
      Object.fromEntries(connectors.map((c) => [c.definition.name, connectorModuleUrl(c.definition)])),
    );
    for (const c of connectors) this.#stageConfigs.set(c.definition.name, c.stageConfigs);
    this.#onError = options.onError ?? (() => undefined);
    this.#onEvent = options.onEvent ?? (() => undefined);
    this.#shm = new ShmConnector(
      { runId, role: 'orchestrator' },
      { dir: this.dir, ownsDir: options.dir === undefined },
    );
    this.#instances.set(SHM_VIA, Promise.resolve(this.#shm));
    this.#forgetAtExit = atProcessExit(() => void this.sweep());
  }

  /** Head mode: payloads whose `origin` is another host are read and freed there (see cluster/head.ts). */
  useRemote(remote: RemotePayloads): void {
    this.#remote = remote;
  }

  /**
   * A host is gone (its lease expired): its payloads went with its memory. They are forgotten
   * without a release (`payload:freed` with reason `host_lost`); consumers that still need them
   * fail their fetch, naming the host. Returns how many.
   */
  dropHost(hostId: string): number {
    let n = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.ref.via !== SHM_VIA || entry.ref.origin?.host_id !== hostId || hostId === this.#remote?.hostId)
        continue;
      this.#entries.delete(key);
      this.#onEvent({ type: 'payload:freed', key, via: entry.ref.via, reason: 'host_lost' });
      n++;
    }
    return n;
  }

  /** Keys of the payloads held now. */
  get keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** Who still holds `key` (empty when it is not tracked). */
  holdersOf(key: string): string[] {
    return [...(this.#entries.get(key)?.holders ?? [])];
  }

  /** True when this run frees payloads that travel `via` (shm, or a plugin class it uses). */
  tracks(via: string): boolean {
    return via === SHM_VIA || Object.hasOwn(this.connectorModules, via);
  }

  /**
   * Records that `ref` (a stored reference seen in a stage output of `producer`) is held by
   * `holders`; holders add up when a key is registered again. With no holder at all it is freed
   * now. Inline references, invalid keys and classes this run does not use are ignored.
   */
  register(
    ref: PayloadRef,
    holders: readonly string[],
    requestId: string | null = null,
    producer: number | null = null,
  ): void {
    if (!isStoredPayload(ref) || !this.tracks(ref.via) || !isValidPayloadKey(ref.key)) return;
    if (this.#closed) {
      if (ref.via === SHM_VIA && !this.#isRemote(ref)) this.#shm.releaseNow(ref);
      else this.#free(ref);
      this.#onEvent({ type: 'payload:freed', key: ref.key, via: ref.via, reason: 'teardown' });
      return;
    }
    let entry = this.#entries.get(ref.key);
    if (!entry) {
      this.#entries.set(ref.key, (entry = { ref, holders: new Set(), requestId }));
      this.#onEvent({
        type: 'payload:stored',
        key: ref.key,
        via: ref.via,
        size: ref.size,
        stage_id: producer,
        request_id: requestId,
        holders: [...holders],
      });
    }
    for (const h of holders) entry.holders.add(h);
    if (entry.holders.size === 0) this.#drop(ref.key, 'unheld');
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
    this.#drop(key, 'acknowledged');
    return true;
  }

  /** Releases every hold on the payloads registered for a request (it ended: nobody reads them any more). */
  releaseRequest(requestId: string): void {
    for (const [key, entry] of this.#entries) if (entry.requestId === requestId) this.#drop(key, 'request_ended');
  }

  /**
   * The caller's copy of a final output: stored references become inline ones (the bytes are read
   * here: final outputs must reach the user), and the user's hold on each is released.
   */
  async resolveForUser(data: unknown): Promise<unknown> {
    if (!findPayloadRefs(data).some((r) => isStoredPayload(r) && this.tracks(r.via))) return data;
    return mapPayloadRefs(data, async (ref) => {
      if (!isStoredPayload(ref) || !this.tracks(ref.via)) return ref;
      let bytes: Uint8Array;
      try {
        bytes = await (await this.#connectorFor(ref)).get(ref);
      } catch (err) {
        throw new OmniError(
          'OMNI_REQUEST_FAILED',
          `the final output payload ${ref.key} (via ${ref.via}) cannot be read: ${(err as Error).message}`,
          {
            cause: err,
            hint:
              ref.via === SHM_VIA
                ? 'the producing replica announced a payload file that is missing, not a regular file, or not of the announced size'
                : `connector "${ref.via}" could not give back a payload it stored`,
          },
        );
      } finally {
        this.release(ref.key, USER_HOLDER);
      }
      const { data_base64: _, ...rest } = ref;
      return {
        ...rest,
        via: 'inline',
        data_base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
      } satisfies PayloadRef;
    });
  }

  /**
   * Deletes every shm payload file of the run, tracked or not, and the run's private directory
   * (synchronous: the process-exit hook runs it). Plugin classes are swept by {@link close}.
   * Returns how many files went.
   */
  sweep(): number {
    for (const [key, entry] of this.#entries) if (entry.ref.via === SHM_VIA) this.#entries.delete(key);
    return this.#shm.sweepNow();
  }

  /**
   * Frees everything left of the run and stops tracking (later registrations are freed at once):
   * shm files are swept; each plugin class releases what is still held, then sweeps and closes.
   * Resolves with the number of shm files swept; a plugin's failure goes to `onError`.
   */
  async close(): Promise<number> {
    this.#closed = true;
    this.#forgetAtExit();
    for (const [key, entry] of this.#entries) {
      this.#entries.delete(key);
      // Local shm files: the sweep below; another host's: released there.
      if (entry.ref.via !== SHM_VIA || this.#isRemote(entry.ref)) this.#free(entry.ref);
      this.#onEvent({ type: 'payload:freed', key, via: entry.ref.via, reason: 'teardown' });
    }
    // Deletions and releases already under way finish first, so the sweep counts only leftovers.
    // Teardown always completes: a plugin class that hangs is reported and left behind.
    const ok = await withinMs(this.settled(), CLOSE_LIMIT_MS);
    if (!ok) this.#onError(new Error(`still running after ${CLOSE_LIMIT_MS} ms`), 'releasing the payloads of the run');
    const n = this.sweep();
    this.#onEvent({ type: 'payload:swept', files: n });
    await Promise.all(
      Object.keys(this.connectorModules).map(async (name) => {
        const what = `sweeping the payloads of connector "${name}"`;
        const sweep = (async () => {
          try {
            const connector = await this.#instance(name);
            await connector.sweep?.();
            await connector.close?.();
          } catch (err) {
            this.#onError(err, what);
          }
        })();
        if (!(await withinMs(sweep, CLOSE_LIMIT_MS)))
          this.#onError(new Error(`still running after ${CLOSE_LIMIT_MS} ms`), what);
      }),
    );
    return n;
  }

  /** The class that reads and frees `ref`: the remote one for a shm payload stored on another host. */
  #connectorFor(ref: PayloadRef): Promise<PayloadConnector> {
    return this.#isRemote(ref) ? Promise.resolve(this.#remote!.connector) : this.#instance(ref.via);
  }

  #isRemote(ref: PayloadRef): boolean {
    const host = ref.via === SHM_VIA ? ref.origin?.host_id : undefined;
    return this.#remote !== undefined && host !== undefined && host !== this.#remote.hostId;
  }

  /** The orchestrator's instance of a plugin class (created on first use). */
  #instance(name: string): Promise<PayloadConnector> {
    let instance = this.#instances.get(name);
    if (instance === undefined) {
      const url = this.connectorModules[name];
      instance =
        url === undefined
          ? Promise.reject(new OmniError('OMNI_REQUEST_FAILED', `no plugin defines connector "${name}" in this run`))
          : this.#create(name, url);
      this.#instances.set(name, instance);
    }
    return instance;
  }

  #create(name: string, url: string): Promise<PayloadConnector> {
    const stageConfigs = this.#stageConfigs.get(name) ?? {};
    const first = Object.keys(stageConfigs)
      .map(Number)
      .sort((a, b) => a - b)[0];
    const config = first === undefined ? {} : (stageConfigs[first] ?? {});
    return createPayloadConnectorInstance(url, { name, role: 'orchestrator', runId: this.runId, config, stageConfigs });
  }

  #drop(key: string, reason: PayloadFreeReason): void {
    const entry = this.#entries.get(key);
    this.#entries.delete(key);
    if (entry === undefined) return;
    this.#free(entry.ref);
    this.#onEvent({ type: 'payload:freed', key, via: entry.ref.via, reason });
  }

  /** Frees the bytes of a reference through its class, off the caller's path. Never rejects. */
  #free(ref: PayloadRef): void {
    const done = this.#connectorFor(ref)
      .then((c) => c.release?.(ref))
      .catch((err: unknown) => this.#onError(err, `releasing payload ${ref.key} of connector "${ref.via}"`));
    this.#pending.add(done);
    void done.finally(() => this.#pending.delete(done));
  }

  /** Resolves once every deletion or release started so far finished (tests, teardown). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}
