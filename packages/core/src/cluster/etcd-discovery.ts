import { Etcd3, type IKeyValue, type Lease, type Watcher } from 'etcd3';
import { ExponentialBackoff, handleAll, retry, type IBackoff } from 'cockatiel';
import { OmniError } from '../errors.js';
import {
  clusterKeys,
  type AttachedRecord,
  type Discovery,
  type HeadRecord,
  type Registration,
  type ReplicaChange,
  type ReplicaRecord,
} from './discovery.js';

/**
 * etcd3's defaults hide an outage for seconds (5 s circuit breaker, watch backoff up to 30 s):
 * short, bounded backoffs instead. gRPC keepalive below 5 s makes etcd answer "too many pings".
 */
function clientFor(url: string): Etcd3 {
  return new Etcd3({
    hosts: url.split(','),
    dialTimeout: 3_000,
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000 },
    faultHandling: {
      host: () =>
        retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 10, maxDelay: 200 }) }),
      global: retry(handleAll, {
        maxAttempts: 2,
        backoff: new ExponentialBackoff({ initialDelay: 10, maxDelay: 200 }),
      }),
      // etcd3 calls `next()` on it first, which is what cockatiel 3's factory answers; only the declared types differ.
      watchBackoff: new ExponentialBackoff({ initialDelay: 10, maxDelay: 500 }) as unknown as IBackoff<unknown>,
    },
  });
}

function parse<T>(kv: IKeyValue | undefined | null): T | null {
  if (!kv || kv.value.length === 0) return null;
  try {
    return JSON.parse(kv.value.toString()) as T;
  } catch {
    return null; // not ours: ignore rather than crash the head
  }
}

class EtcdRegistration implements Registration {
  readonly lost: Promise<Error>;
  #revoked = false;

  constructor(
    readonly id: string,
    readonly lease: Lease,
  ) {
    this.lost = new Promise((resolve) => lease.once('lost', (err: Error) => resolve(err)));
  }

  async revoke(): Promise<void> {
    if (this.#revoked) return;
    this.#revoked = true;
    await this.lease.revoke().catch(() => undefined);
  }
}

/** {@link Discovery} on etcd 3.4+: leases, create-if-absent transactions, list-then-watch. */
export class EtcdDiscovery implements Discovery {
  readonly #client: Etcd3;

  private constructor(client: Etcd3) {
    this.#client = client;
  }

  /** Connects to `url` (comma-separated members) and checks that etcd answers. */
  static async connect(url: string): Promise<EtcdDiscovery> {
    const client = clientFor(url);
    try {
      await client.get(clusterKeys.root).string();
    } catch (err) {
      client.close();
      throw new OmniError('OMNI_CLUSTER', `etcd at ${url} does not answer: ${(err as Error).message}`, {
        hint: 'check --etcd (e.g. http://10.0.0.5:2379) and that etcd runs',
      });
    }
    return new EtcdDiscovery(client);
  }

  async register(ttlS: number): Promise<Registration> {
    const lease = this.#client.lease(ttlS, { autoKeepAlive: true });
    lease.on('lost', () => undefined); // reported through Registration.lost
    const id = await lease.grant();
    return new EtcdRegistration(id, lease);
  }

  async publishHead(reg: Registration, head: HeadRecord, fingerprint: unknown): Promise<void> {
    await this.#client
      .put(clusterKeys.fingerprint(head.run_id))
      .value(JSON.stringify(fingerprint))
      .lease(reg.id)
      .exec();
    await this.#client.put(clusterKeys.head(head.run_id)).value(JSON.stringify(head)).lease(reg.id).exec();
  }

  async readHead(runId?: string): Promise<{ head: HeadRecord; fingerprint: unknown } | null> {
    let head: HeadRecord | null = null;
    if (runId !== undefined) {
      head = parse<HeadRecord>((await this.#client.get(clusterKeys.head(runId)).exec()).kvs[0]);
    } else {
      // The newest head of any run: the one whose key was created last.
      const kvs = (await this.#client.getAll().prefix(clusterKeys.root).exec()).kvs.filter((kv) =>
        kv.key.toString().endsWith('/head'),
      );
      kvs.sort((a, b) => Number(BigInt(b.create_revision) - BigInt(a.create_revision)));
      head = parse<HeadRecord>(kvs[0]);
    }
    if (head === null) return null;
    const fingerprint = parse<unknown>((await this.#client.get(clusterKeys.fingerprint(head.run_id)).exec()).kvs[0]);
    return { head, fingerprint };
  }

  async watchHead(runId: string, onChange: (present: boolean) => void): Promise<() => Promise<void>> {
    const key = clusterKeys.head(runId);
    const got = await this.#client.get(key).exec();
    const watcher = await this.#client
      .watch()
      .key(key)
      .startRevision(String(BigInt(got.header.revision) + 1n))
      .create();
    watcher.on('put', () => onChange(true));
    watcher.on('delete', () => onChange(false));
    if (got.kvs.length === 0) onChange(false);
    return () => this.#cancel(watcher);
  }

  async publishHost(reg: Registration, runId: string, hostId: string, info: Record<string, unknown>): Promise<void> {
    await this.#client
      .put(`${clusterKeys.hosts(runId)}${hostId}`)
      .value(JSON.stringify({ host_id: hostId, since: Date.now(), ...info }))
      .lease(reg.id)
      .exec();
  }

  async claimReplica(
    reg: Registration,
    runId: string,
    record: Omit<ReplicaRecord, 'replica_id'>,
    maxId: number,
  ): Promise<number> {
    for (;;) {
      const { kvs } = await this.#client.getAll().prefix(clusterKeys.stageReplicas(runId, record.stage_id)).exec();
      const idOf = (kv: IKeyValue): number => Number(kv.key.toString().slice(kv.key.toString().lastIndexOf('/') + 1));
      // A restarted agent takes back the ids its host held under its previous (dead) lease, without waiting for it to expire.
      const previous = kvs.find(
        (kv) => parse<ReplicaRecord>(kv)?.host_id === record.host_id && String(kv.lease) !== reg.id,
      );
      if (previous !== undefined) {
        const id = idOf(previous);
        const key = clusterKeys.replica(runId, record.stage_id, id);
        const res = await this.#client
          .if(key, 'Mod', '==', previous.mod_revision)
          .then(
            this.#client
              .put(key)
              .value(JSON.stringify({ ...record, replica_id: id }))
              .lease(reg.id),
          )
          .commit();
        if (res.succeeded) return id;
        continue;
      }
      const taken = new Set(kvs.map(idOf));
      let id = 0;
      while (taken.has(id)) id++;
      if (id >= maxId) {
        throw new OmniError('OMNI_CLUSTER', `stage ${record.stage_id} already has ${maxId} replicas registered`, {
          hint: 'lower --replicas, or stop agents you do not need',
        });
      }
      const key = clusterKeys.replica(runId, record.stage_id, id);
      const value = JSON.stringify({ ...record, replica_id: id });
      // Create-if-absent: of two agents racing for the same id exactly one wins; the other looks again.
      const res = await this.#client
        .if(key, 'Create', '==', 0)
        .then(this.#client.put(key).value(value).lease(reg.id))
        .commit();
      if (res.succeeded) return id;
    }
  }

  async updateReplica(reg: Registration, runId: string, record: ReplicaRecord): Promise<boolean> {
    const key = clusterKeys.replica(runId, record.stage_id, record.replica_id);
    const current = await this.getReplica(runId, record.stage_id, record.replica_id);
    if (current?.incarnation !== record.incarnation) return false;
    await this.#client.put(key).value(JSON.stringify(record)).lease(reg.id).exec();
    return true;
  }

  async releaseReplica(runId: string, stageId: number, replicaId: number, incarnation: string): Promise<void> {
    const key = clusterKeys.replica(runId, stageId, replicaId);
    const got = (await this.#client.get(key).exec()).kvs[0];
    if (parse<ReplicaRecord>(got)?.incarnation !== incarnation || got === undefined) return;
    // Only if nobody re-claimed it since we read it.
    await this.#client.if(key, 'Mod', '==', got.mod_revision).then(this.#client.delete().key(key)).commit();
  }

  async getReplica(runId: string, stageId: number, replicaId: number): Promise<ReplicaRecord | null> {
    return parse<ReplicaRecord>((await this.#client.get(clusterKeys.replica(runId, stageId, replicaId)).exec()).kvs[0]);
  }

  async listReplicas(runId: string): Promise<ReplicaRecord[]> {
    const { kvs } = await this.#client.getAll().prefix(clusterKeys.replicas(runId)).exec();
    return kvs.map((kv) => parse<ReplicaRecord>(kv)).filter((r): r is ReplicaRecord => r !== null);
  }

  async listHosts(runId: string): Promise<Record<string, Record<string, unknown>>> {
    const { kvs } = await this.#client.getAll().prefix(clusterKeys.hosts(runId)).exec();
    const hosts: Record<string, Record<string, unknown>> = {};
    for (const kv of kvs)
      hosts[kv.key.toString().slice(clusterKeys.hosts(runId).length)] = parse<Record<string, unknown>>(kv) ?? {};
    return hosts;
  }

  async markAttached(reg: Registration, runId: string, record: AttachedRecord): Promise<void> {
    await this.#client
      .put(clusterKeys.attached(runId, record.stage_id, record.replica_id))
      .value(JSON.stringify(record))
      .lease(reg.id)
      .exec();
  }

  async clearAttached(runId: string, stageId: number, replicaId: number, incarnation: string): Promise<void> {
    const key = clusterKeys.attached(runId, stageId, replicaId);
    const got = (await this.#client.get(key).exec()).kvs[0];
    if (got === undefined || parse<AttachedRecord>(got)?.incarnation !== incarnation) return;
    await this.#client.if(key, 'Mod', '==', got.mod_revision).then(this.#client.delete().key(key)).commit();
  }

  async waitAttached(
    runId: string,
    stageId: number,
    replicaId: number,
    incarnation: string,
    signal: AbortSignal,
  ): Promise<AttachedRecord> {
    const key = clusterKeys.attached(runId, stageId, replicaId);
    const got = await this.#client.get(key).exec();
    const now = parse<AttachedRecord>(got.kvs[0]);
    if (now?.incarnation === incarnation) return now;
    const watcher = await this.#client
      .watch()
      .key(key)
      .startRevision(String(BigInt(got.header.revision) + 1n))
      .create();
    try {
      return await new Promise<AttachedRecord>((resolve, reject) => {
        const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
        if (signal.aborted) onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        watcher.on('put', (kv) => {
          const record = parse<AttachedRecord>(kv);
          if (record?.incarnation !== incarnation) return;
          signal.removeEventListener('abort', onAbort);
          resolve(record);
        });
      });
    } finally {
      await this.#cancel(watcher);
    }
  }

  async listAttached(runId: string): Promise<AttachedRecord[]> {
    const { kvs } = await this.#client.getAll().prefix(clusterKeys.attachedAll(runId)).exec();
    return kvs.map((kv) => parse<AttachedRecord>(kv)).filter((r): r is AttachedRecord => r !== null);
  }

  async watchReplicas(runId: string, onChange: (change: ReplicaChange) => void): Promise<() => Promise<void>> {
    return this.#watchPrefix(clusterKeys.replicas(runId), {
      put: (kv) => {
        const record = parse<ReplicaRecord>(kv);
        if (record) onChange({ kind: 'put', record });
      },
      delete: (kv, previous) => {
        const [stage, replica] = kv.key.toString().slice(clusterKeys.replicas(runId).length).split('/').map(Number);
        onChange({ kind: 'delete', stage_id: stage!, replica_id: replica!, previous: parse<ReplicaRecord>(previous) });
      },
    });
  }

  async watchHosts(runId: string, onChange: (hostId: string, present: boolean) => void): Promise<() => Promise<void>> {
    const prefix = clusterKeys.hosts(runId);
    return this.#watchPrefix(prefix, {
      put: (kv) => onChange(kv.key.toString().slice(prefix.length), true),
      delete: (kv) => onChange(kv.key.toString().slice(prefix.length), false),
    });
  }

  /** List at revision R, replay it as puts, watch from R + 1 with the previous values. */
  async #watchPrefix(
    prefix: string,
    on: { put(kv: IKeyValue): void; delete(kv: IKeyValue, previous: IKeyValue | undefined): void },
  ): Promise<() => Promise<void>> {
    const listed = await this.#client.getAll().prefix(prefix).exec();
    const watcher = await this.#client
      .watch()
      .prefix(prefix)
      .withPreviousKV()
      .startRevision(String(BigInt(listed.header.revision) + 1n))
      .create();
    watcher.on('put', (kv) => on.put(kv));
    watcher.on('delete', (kv, previous) => on.delete(kv, previous));
    for (const kv of listed.kvs) on.put(kv);
    return () => this.#cancel(watcher);
  }

  async #cancel(watcher: Watcher): Promise<void> {
    await watcher.cancel().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#client.close();
  }
}
