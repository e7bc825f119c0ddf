import type { EventBus } from '../events/event-bus.js';
import type { OmniEventType } from '../events/types.js';
import type { InitPlan } from '../planning/types.js';
import type { StartedReplica } from './started-replica.js';
import { Gate } from './wait-queue.js';

/** What the entry gate reads of a pipeline: its stages and the replicas serving each now. */
export interface AdmittingPipeline {
  readonly plan: InitPlan;
  readonly stopping: boolean;
  liveReplicas(stageId: number): StartedReplica[];
}

/** Replicas joining or leaving a stage's pool: the gate is sized again after each. */
const POOL_CHANGES: readonly OmniEventType[] = [
  'replica:ready',
  'replica:attached',
  'replica:detached',
  'replica:exit',
  'replica:unresponsive',
  'replica:responsive',
];

/**
 * The router's entry gate: the pipeline admits at most the sum of its stages' capacities, a stage's
 * being its per-replica bound times the replicas it has **now** (one replica's worth while it has
 * none, so requests queue for its first), not the planned count. So replicas that agents attach
 * widen admission and detached ones narrow it (requests already admitted stay). Each change is told
 * as `pipeline:admission`, and so is the first size.
 */
export function entryGate(pipeline: AdmittingPipeline, bounds: ReadonlyMap<number, number>, events: EventBus): Gate {
  const perStage = (): { stage_id: number; replicas: number; per_replica: number }[] =>
    pipeline.plan.stages.map(({ stage_id }) => ({
      stage_id,
      replicas: pipeline.liveReplicas(stage_id).length,
      per_replica: bounds.get(stage_id) ?? 1,
    }));
  const capacityOf = (stages: ReturnType<typeof perStage>): number =>
    stages.reduce((sum, s) => sum + Math.max(1, s.replicas) * s.per_replica, 0);
  const gate = new Gate(() => capacityOf(perStage()));
  let told = -1;
  const resize = (): void => {
    // Teardown takes every replica away: nothing is admitted any more, so nothing to tell.
    if (pipeline.stopping) return;
    const stages = perStage();
    const capacity = capacityOf(stages);
    if (capacity === told) return;
    told = capacity;
    events.emit({ type: 'pipeline:admission', capacity, stages });
    gate.wake();
  };
  for (const type of POOL_CHANGES) events.on(type, resize);
  resize();
  return gate;
}
