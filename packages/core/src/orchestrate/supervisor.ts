import { OmniError, toOmniError } from '../errors.js';
import type { ReplicaExit } from '../hooks/replica-handles.js';
import type { RunServices } from './run-services.js';
import type { RunningPipeline, StartedReplica } from './running-pipeline.js';
import { describeExit } from '../error-messages.js';
import { stageOf } from '../planning/stage-of.js';

/**
 * Applies each stage's `runtime.restart` policy to replicas that die after they were ready:
 * `on-failure` restarts them (up to `max_restarts`, waiting `backoff_ms` × attempt), `never` leaves
 * them dead. The pipeline keeps serving while every stage has a live (or restarting) replica; when a
 * stage has none left, the pipeline fails with an error naming the stage, replica and exit status.
 */
export function superviseRestarts(omni: RunServices, pipeline: RunningPipeline): void {
  const attempts = new Map<string, number>();
  // Restarts in flight per stage: the stage is not dead while one of its replicas is coming back.
  const restarting = new Map<number, number>();
  const restartDone = (stageId: number): void => {
    const n = (restarting.get(stageId) ?? 1) - 1;
    if (n <= 0) restarting.delete(stageId);
    else restarting.set(stageId, n);
  };

  const failIfStageDead = (replica: StartedReplica, exit: ReplicaExit, why: string): void => {
    const { stage_id, replica_id } = replica.plan;
    if (pipeline.liveReplicas(stage_id).length > 0 || restarting.has(stage_id)) return;
    pipeline.fail(
      new OmniError(
        'OMNI_WORKER_EXITED',
        `stage ${stage_id} has no live replica: replica ${replica_id} (pid ${replica.process.pid}) exited while running (${describeExit(exit)})${why}`,
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
          hint: 'set runtime.restart: {policy: on-failure} or num_replicas > 1 on the stage to keep serving when a replica dies',
        },
      ),
    );
  };

  pipeline.onReplicaDeath((replica, exit) => {
    const { stage_id, replica_id } = replica.plan;
    const policy = stageOf(pipeline.plan, stage_id).stage.runtime.restart;
    const key = `${stage_id}/${replica_id}`;
    const attempt = (attempts.get(key) ?? 0) + 1;
    if (policy.policy !== 'on-failure' || attempt > policy.max_restarts || pipeline.stopping) {
      pipeline.untrack(replica);
      const why = policy.policy === 'on-failure' ? `; restart budget of ${policy.max_restarts} used up` : '';
      omni.logger.error(
        { stage: stage_id, replica: replica_id, exit },
        `replica exited while running (${describeExit(exit)})${why}`,
      );
      failIfStageDead(replica, exit, why);
      return;
    }
    attempts.set(key, attempt);
    restarting.set(stage_id, (restarting.get(stage_id) ?? 0) + 1);
    omni.events.emit({ type: 'replica:restart', stage_id, replica_id, attempt, reason: describeExit(exit) });
    omni.logger.warn(
      { code: 'OMNI_WARN_REPLICA_RESTARTING', stage: stage_id, replica: replica_id },
      `replica exited (${describeExit(exit)}); restart ${attempt}/${policy.max_restarts}`,
    );
    const delay = policy.backoff_ms * attempt;
    setTimeout(() => {
      pipeline.restartReplica(replica).then(
        () => restartDone(stage_id),
        (err: unknown) => {
          restartDone(stage_id);
          const e = toOmniError(err);
          if (pipeline.stopping) return;
          omni.logger.error({ err: e, stage: stage_id, replica: replica_id }, 'restarting the replica failed');
          failIfStageDead(replica, exit, `; the restart failed: ${e.message}`);
        },
      );
    }, delay).unref();
  });
}
