import { setMaxListeners } from 'node:events';
import { rm } from 'node:fs/promises';
import type { RunServices } from './run-services.js';
import type { ReplicaExit, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { StartedReplica } from './started-replica.js';
import type { InitPlan, ReplicaPlan } from '../planning/types.js';
import { OmniError } from '../errors.js';
import { stageOf } from '../planning/stage-of.js';
import { isProcessStopped } from '../launch/proc-state.js';
export type { StartedReplica } from './started-replica.js';
import type { PayloadTracker } from '../connectors/payload-tracker.js';
import { describeExit, pipelineStopping, replicaLabel } from '../error-messages.js';

/** Called when a ready replica exits without being asked to (the router decides: restart or fail). */
export type ReplicaDeathHandler = (replica: StartedReplica, exit: ReplicaExit) => void;

/** What a running pipeline is built with by the bring-up. */
export interface RunningPipelineOptions {
  /** Private directory of this run (control socket, owner record); removed at the end of teardown. */
  runDir: string;
  /** The run's payload book (shared memory and plugin connector classes); swept at teardown. */
  payloads: PayloadTracker;
  stopGraceMs: number;
  /** Closes the control endpoint; called once at the end of teardown. */
  closeControl: () => Promise<void>;
  /** Starts a fresh process for a replica plan (lock → spawn → attach); used by restarts. */
  launch?: (plan: ReplicaPlan) => Promise<StartedReplica>;
}

/**
 * A pipeline that is (being) brought up: the started replicas, in start order, and teardown.
 * Teardown is idempotent and always completes: stages stop in reverse order (downstream first),
 * the replicas of one stage together; then the control endpoint closes and the run directory goes.
 */
export class RunningPipeline {
  readonly plan: InitPlan;
  readonly runId: string;
  readonly runDir: string;
  /** The run's events and logger (a router created for it reports through them). */
  readonly services: RunServices;
  readonly #options: RunningPipelineOptions;
  readonly #started: StartedReplica[] = [];
  #stopPromise: Promise<void> | null = null;
  readonly #stopAbort = new AbortController();
  #deathHandler: ReplicaDeathHandler | null = null;
  #failed: (err: OmniError) => void = () => {};
  #failedEmitted = false;
  /** Rejects when the running pipeline fails (a replica died and nothing recovered it). */
  readonly failed: Promise<never>;
  /** Shared-memory payloads of this run in flight between stages; swept at teardown. */
  readonly payloads: PayloadTracker;

  constructor(services: RunServices, plan: InitPlan, options: RunningPipelineOptions) {
    this.services = services;
    this.plan = plan;
    this.runId = plan.run_id;
    this.runDir = options.runDir;
    this.#options = options;
    // Restarts in flight listen on the stop signal; many replicas are normal, not a leak.
    setMaxListeners(0, this.#stopAbort.signal);
    this.payloads = options.payloads;
    this.failed = new Promise<never>((_, reject) => {
      this.#failed = reject;
    });
    // Nobody may be listening yet; the rejection is still observed by whoever awaits `failed`.
    this.failed.catch(() => {});
  }

  get replicas(): readonly StartedReplica[] {
    return this.#started;
  }

  /** Replicas of a stage that are attached and not stopping. */
  liveReplicas(stageId: number): StartedReplica[] {
    return this.#started.filter(
      (r) =>
        r.plan.stage_id === stageId &&
        r.connection !== null &&
        !r.stopping &&
        r.unresponsive !== true &&
        r.unready !== true &&
        !r.process.hasExited(),
    );
  }

  /** Records a started process; from now on teardown will stop it. */
  track(plan: ReplicaPlan, process: ReplicaProcessHandle): StartedReplica {
    const started: StartedReplica = { plan, process, connection: null, stopping: false };
    this.#started.push(started);
    void process.exited.then((exit) => this.#onExit(started, exit));
    // Started while teardown was already running (a late restart): stop it right away.
    if (this.#stopPromise !== null) void this.stopReplica(started).catch(() => undefined);
    return started;
  }

  /** Removes a replica that was replaced (restart): its slot goes to the new process. */
  untrack(replica: StartedReplica): void {
    const i = this.#started.indexOf(replica);
    if (i >= 0) this.#started.splice(i, 1);
  }

  /** Who decides what happens when a ready replica dies (default: the pipeline fails). */
  onReplicaDeath(handler: ReplicaDeathHandler): void {
    this.#deathHandler = handler;
  }

  /** Marks the running pipeline failed (e.g. a stage lost its last replica); emits `pipeline:failed` once. */
  fail(err: OmniError): void {
    if (!this.#failedEmitted) {
      this.#failedEmitted = true;
      const c = err.context;
      this.services.events.emit({
        type: 'pipeline:failed',
        code: err.code,
        message: err.message,
        ...(c.stage_id === undefined ? {} : { stage_id: c.stage_id }),
        ...(c.replica_id === undefined ? {} : { replica_id: c.replica_id }),
        ...(c.phase === undefined ? {} : { phase: c.phase }),
      });
    }
    this.#failed(err);
  }

  #onExit(replica: StartedReplica, exit: ReplicaExit): void {
    const { stage_id, replica_id } = replica.plan;
    this.services.events.emit({
      type: 'replica:exit',
      stage_id,
      replica_id,
      pid: replica.process.pid,
      code: exit.code,
      signal: exit.signal,
      expected: replica.stopping || this.#stopPromise !== null,
    });
    if (replica.stopping || this.#stopPromise !== null || replica.connection === null) return;
    replica.connection.close();
    if (this.#deathHandler) {
      this.#deathHandler(replica, exit);
      return;
    }
    this.fail(
      new OmniError(
        'OMNI_WORKER_EXITED',
        `${replicaLabel(replica.plan, replica.process.pid)} exited while running (${describeExit(exit)})`,
        {
          context: {
            stage_id,
            replica_id,
            phase: 'running',
            pid: replica.process.pid,
            exit_code: exit.code,
            signal: exit.signal,
            last_lines: replica.process.lastLines().slice(-10),
          },
          hint: 'see the replica log lines above; set runtime.restart: {policy: on-failure} to restart replicas that die',
        },
      ),
    );
  }

  /**
   * Replaces a dead replica with a fresh process of the same plan (same devices, same env), going
   * through lock → spawn → attach again. The old entry leaves the started list.
   */
  async restartReplica(replica: StartedReplica): Promise<StartedReplica> {
    if (!this.#options.launch) throw new OmniError('OMNI_INTERNAL', 'this pipeline cannot restart replicas');
    if (this.#stopPromise !== null) throw pipelineStopping('replicas are not restarted');
    this.untrack(replica);
    return this.#options.launch(replica.plan);
  }

  /** Aborted when teardown begins: launches still in flight (restarts) give up. */
  get stopSignal(): AbortSignal {
    return this.#stopAbort.signal;
  }

  /** True once teardown has begun. */
  get stopping(): boolean {
    return this.#stopPromise !== null;
  }

  /** Stops one replica: graceful shutdown message, then SIGTERM → grace → SIGKILL of its group. */
  async stopReplica(replica: StartedReplica): Promise<void> {
    replica.stopping = true;
    // A stopped process can neither read a shutdown nor handle SIGTERM: no grace to wait out.
    const frozen = replica.unresponsive === true || isProcessStopped(replica.process.pid);
    if (replica.connection && !replica.process.hasExited() && !frozen) {
      await replica.connection.shutdown().catch(() => undefined);
    }
    await replica.process.stop(frozen ? 0 : this.#options.stopGraceMs);
    replica.connection?.close();
  }

  /** Tears everything down. Safe to call several times and concurrently; resolves when done. */
  stop(reason = 'requested'): Promise<void> {
    this.#stopPromise ??= this.#teardown(reason);
    return this.#stopPromise;
  }

  async #teardown(reason: string): Promise<void> {
    this.services.events.emit({ type: 'pipeline:stopping', reason });
    this.#stopAbort.abort(pipelineStopping(reason));
    // Downstream stages first (reverse stage order); replicas of a stage in parallel.
    const byStage = new Map<number, StartedReplica[]>();
    for (const r of this.#started) {
      const idx = stageOf(this.plan, r.plan.stage_id).stage_idx;
      const list = byStage.get(idx) ?? [];
      list.push(r);
      byStage.set(idx, list);
    }
    for (const idx of [...byStage.keys()].sort((a, b) => b - a)) {
      await Promise.all(
        byStage
          .get(idx)!
          .map((r) =>
            this.stopReplica(r).catch((err: unknown) =>
              this.services.logger.error(
                { err, stage: r.plan.stage_id, replica: r.plan.replica_id },
                'stopping a replica failed',
              ),
            ),
          ),
      );
    }
    // Every replica is gone: no payload file of the run may outlive it (failed, aborted, unacknowledged).
    try {
      await this.payloads.close();
    } catch (err) {
      this.services.logger.warn(
        { code: 'OMNI_WARN_TEARDOWN_INCOMPLETE', err },
        'sweeping the payload files of the run failed',
      );
    }
    await this.#options
      .closeControl()
      .catch((err: unknown) =>
        this.services.logger.warn(
          { code: 'OMNI_WARN_TEARDOWN_INCOMPLETE', err },
          'closing the control endpoint failed',
        ),
      );
    await rm(this.runDir, { recursive: true, force: true });
    this.services.events.emit({ type: 'pipeline:stopped' });
  }
}
