import { OmniError } from '../errors.js';
import type { InitPlan, StagePlan } from './types.js';

/** The stage plan of `stageId`; a replica's stage is always in its plan, so a miss is a bug of ours. */
export function stageOf(plan: Pick<InitPlan, 'stages'>, stageId: number): StagePlan {
  const stage = plan.stages.find((s) => s.stage_id === stageId);
  if (stage === undefined) throw new OmniError('OMNI_INTERNAL', `stage ${stageId} is not in the plan.`);
  return stage;
}
