/**
 * Where heads and agents find each other. The router never sees this: the head turns what
 * discovery says into attached or detached replicas. etcd implements it (`EtcdDiscovery`); a
 * Kubernetes backend would implement the same interface as a plugin.
 */

/** What a head publishes under its lease (`/omnistage/<run>/head`). Never a token. */
export interface HeadRecord {
  run_id: string;
  /** Where replicas dial in: `tcp://HOST:PORT`. */
  control: string;
  /** sha256 of the pipeline's fingerprint (see config-fingerprint.ts). */
  config_hash: string;
  host_id: string;
  /** Unix ms. */
  since: number;
  /** True when the control port speaks mutual TLS only: agents need `--tls-cert/--tls-key/--tls-ca`. */
  tls?: boolean;
}

/** A replica id an agent claimed (`/omnistage/<run>/replicas/<stage>/<replica>`), bound to the agent's lease. */
export interface ReplicaRecord {
  stage_id: number;
  replica_id: number;
  host_id: string;
  /** Changes with every start of the replica and every new lease: tokens are derived from it, so an old one is stale. */
  incarnation: string;
  /** `running`, or `leaving` once the agent shuts down cleanly. */
  state: 'running' | 'leaving';
  since: number;
  /** The agent's host address (`--advertise`): the replica binds and dials from it. */
  address?: string;
  /**
   * An HTTP engine's readiness URL at its advertised address (`http://ADDR:PORT/v1/models`), put
   * once the agent saw it ready: the head attaches to it there and routes to it over HTTP.
   */
  readiness_url?: string;
  /** The replica's process id on its host, put with `readiness_url` (an HTTP engine sends the head no hello to learn it from). */
  pid?: number;
  /** The agent's payload server (`tcp://HOST:PORT`): consumers on other hosts fetch this replica's payloads there. */
  payloads?: string;
}

/**
 * A replica the head took into its stage's pool (`/omnistage/<run>/attached/<stage>/<replica>`,
 * under the head's lease): its agent's attach phase ends when it appears (device locks released),
 * and `status --etcd` shows the address the head saw the replica's connection come from.
 */
export interface AttachedRecord {
  stage_id: number;
  replica_id: number;
  host_id: string;
  incarnation: string;
  /** `ADDRESS:PORT` of the replica's control connection as the head saw it. */
  peer: string;
  since: number;
}

/** A change of one replica key. */
export type ReplicaChange =
  | { kind: 'put'; record: ReplicaRecord }
  | { kind: 'delete'; stage_id: number; replica_id: number; previous: ReplicaRecord | null };

/** A lease held by this process: its keys vanish when it is revoked or expires. */
export interface Registration {
  readonly id: string;
  /** Resolves (never rejects) when the lease is lost (keepalives failed for 2 × TTL): its keys are gone or going. */
  readonly lost: Promise<Error>;
  /** Gives the lease back: its keys vanish at once. Idempotent. */
  revoke(): Promise<void>;
}

/** What a head and its agents need of a discovery backend. */
export interface Discovery {
  /** A fresh lease of `ttlS` seconds, kept alive until revoked or lost. */
  register(ttlS: number): Promise<Registration>;
  /** Publishes the head and its pipeline fingerprint under `reg`. */
  publishHead(reg: Registration, head: HeadRecord, fingerprint: unknown): Promise<void>;
  /** The head of `runId`, or of the newest run when no id is given; null when none is published. */
  readHead(runId?: string): Promise<{ head: HeadRecord; fingerprint: unknown } | null>;
  /** Calls `onChange(false)` when the head's key goes and `onChange(true)` when it comes back. Resolves with an unsubscribe. */
  watchHead(runId: string, onChange: (present: boolean) => void): Promise<() => Promise<void>>;
  /** Publishes a host under `reg` (`/omnistage/<run>/hosts/<host_id>`). */
  publishHost(reg: Registration, runId: string, hostId: string, info: Record<string, unknown>): Promise<void>;
  /** Claims the lowest free replica id of a stage with a create-if-absent transaction bound to `reg`. */
  claimReplica(
    reg: Registration,
    runId: string,
    record: Omit<ReplicaRecord, 'replica_id'>,
    maxId: number,
  ): Promise<number>;
  /** Updates a claimed replica key (still bound to `reg`) when its incarnation is still `record.incarnation`. */
  updateReplica(reg: Registration, runId: string, record: ReplicaRecord): Promise<boolean>;
  /** Releases a claimed id if it still belongs to `incarnation`. */
  releaseReplica(runId: string, stageId: number, replicaId: number, incarnation: string): Promise<void>;
  getReplica(runId: string, stageId: number, replicaId: number): Promise<ReplicaRecord | null>;
  listReplicas(runId: string): Promise<ReplicaRecord[]>;
  listHosts(runId: string): Promise<Record<string, Record<string, unknown>>>;
  /** The head marks a replica attached (under its own lease). */
  markAttached(reg: Registration, runId: string, record: AttachedRecord): Promise<void>;
  /** The head unmarks a replica if the mark is still of `incarnation`. */
  clearAttached(runId: string, stageId: number, replicaId: number, incarnation: string): Promise<void>;
  /** Resolves once the head marked `incarnation` of the replica attached; rejects when `signal` aborts. */
  waitAttached(
    runId: string,
    stageId: number,
    replicaId: number,
    incarnation: string,
    signal: AbortSignal,
  ): Promise<AttachedRecord>;
  listAttached(runId: string): Promise<AttachedRecord[]>;
  /** List-then-watch of the run's replica keys. Resolves with an unsubscribe. */
  watchReplicas(runId: string, onChange: (change: ReplicaChange) => void): Promise<() => Promise<void>>;
  /** Watches the run's host keys: `true` when a host joins, `false` when it leaves. */
  watchHosts(runId: string, onChange: (hostId: string, present: boolean) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** The keys of one run, in one place. */
export const clusterKeys = {
  root: '/omnistage/',
  head: (runId: string): string => `/omnistage/${runId}/head`,
  fingerprint: (runId: string): string => `/omnistage/${runId}/fingerprint`,
  replicas: (runId: string): string => `/omnistage/${runId}/replicas/`,
  stageReplicas: (runId: string, stageId: number): string => `/omnistage/${runId}/replicas/${stageId}/`,
  replica: (runId: string, stageId: number, replicaId: number): string =>
    `/omnistage/${runId}/replicas/${stageId}/${replicaId}`,
  hosts: (runId: string): string => `/omnistage/${runId}/hosts/`,
  attachedAll: (runId: string): string => `/omnistage/${runId}/attached/`,
  attached: (runId: string, stageId: number, replicaId: number): string =>
    `/omnistage/${runId}/attached/${stageId}/${replicaId}`,
};
