import type { Logger } from 'pino';
import type { EventBus } from '../events/event-bus.js';
import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { OmniHooks } from '../hooks/hooks.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import type { InitPlan, ReplicaPlan, WorkerSpec } from '../planning/types.js';

/** What every start shares, on any host: the hooks plugins tapped, where to report, this host's lock dir. */
export interface StartDriver {
  readonly hooks: OmniHooks;
  readonly events: EventBus;
  readonly logger: Logger;
  readonly lockDir: string;
}

/** A worker as it is spawned on a host, and the control channel core's attach waits on where that host holds it. */
export interface AnnouncedWorker {
  readonly worker: WorkerSpec;
  readonly channel: ReplicaChannel | undefined;
}

/**
 * Where the one start sequence (`startReplica`: lock → spawn → attach) runs a replica. Core's
 * built-in `spawn` and `attach` taps answer through the host (its launcher, how it learns the
 * replica is in), after every plugin tap, so a plugin sees the same phases on every host.
 * Locally the replica dials this orchestrator's control socket and joins its pipeline; on an agent
 * it dials the head over TCP and is in once the head marks it attached. `T` is what a start gives
 * back: locally the pipeline's record of the replica, on an agent its process.
 */
export interface ReplicaHost<T> {
  readonly runId: string;
  /** The plan this host starts replicas of (a replica's stage is read there). */
  readonly plan: Pick<InitPlan, 'stages'>;
  /** The run's private directory on this host ('' where there is none: an agent). */
  readonly runDir: string;
  /** Whether this host holds a worker's control channel, so it can serve its init windows; elsewhere a replica loads alone. */
  readonly servesInitWindows: boolean;
  /** Where a replica's output lines go. */
  onLine(replica: ReplicaPlan, stream: 'stdout' | 'stderr', line: string): void;
  /** The worker as spawned: its env says how to reach its orchestrator (announced to it first, where it listens here). */
  announce(replica: ReplicaPlan, phased: boolean): AnnouncedWorker;
  /** Core's `spawn` tap on this host: its launcher. */
  launch(worker: WorkerSpec, rt: ReplicaRuntime): Promise<ReplicaProcessHandle>;
  /** Core's `attach` tap on this host. */
  attach(process: ReplicaProcessHandle, rt: ReplicaRuntime): Promise<ReplicaConnection>;
  /** The process started (whoever's tap started it): from now on a failure or teardown stops it. */
  spawned(replica: ReplicaPlan, process: ReplicaProcessHandle): T;
  /** The attach tap answered: the replica is in once this resolves (run inside the attach phase, supervised). */
  attached(started: T, connection: ReplicaConnection, rt: ReplicaRuntime): Promise<void>;
  /** The start failed after spawn: what becomes of the process (locally teardown or a restart stops it). */
  abandon(started: T): Promise<void>;
}
