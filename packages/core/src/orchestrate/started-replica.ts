import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { ReplicaPlan } from '../planning/types.js';

/** A replica that was started (and maybe attached) during this run. */
export interface StartedReplica {
  readonly plan: ReplicaPlan;
  process: ReplicaProcessHandle;
  connection: ReplicaConnection | null;
  /** Set when teardown (or a restart) asked it to stop, so its exit is not reported as a failure. */
  stopping: boolean;
  /** Set when liveness found it frozen or silent: it is out of rotation and being killed. */
  unresponsive?: boolean;
  /** Set while failed readiness re-checks keep it (an HTTP engine) out of rotation; cleared when it answers again. */
  unready?: boolean;
  /**
   * Aborted when liveness takes the replica out of rotation: the requests it is serving end at once
   * and are retried elsewhere (or fail) like those of a replica that died. Replaced when it comes back.
   */
  rotation?: AbortController;
  /** Head mode: the host of a replica an agent started there (absent for this host's own replicas). */
  host_id?: string;
  /** Head mode: why a remote replica left its stage's pool (lease expired, connection dropped...). */
  detached?: string;
}
