import type { EngineArgs, StageConfig } from '../config/types.js';
import { OmniError } from '../errors.js';
import type { StageMetadata } from './types.js';

/**
 * What is needed to build a head-side client for a replica that registers after start-up
 * (upstream `StageRemoteFactoryContext`). Upstream's `vllm_config`/`executor_class` are
 * Python objects built per logical LLM stage; our counterpart is the stage's template replica's
 * engine args.
 */
export interface StageRemoteFactoryContext {
  /** The configured `stage_id` (the map key). */
  stage_id: number;
  /** The template's metadata stage type, `llm` when empty. */
  stage_type: string;
  /** The stage's config (shared, not copied). */
  stage: StageConfig;
  /** The template's metadata; a late replica takes a shallow copy with its own `replica_id`. */
  base_metadata: StageMetadata;
  /** The template's engine args when the plan carries them, else null. */
  engine_args: EngineArgs | null;
  diffusion_batch_size: number;
}

/** What {@link captureStageFactoryContexts} needs of a logical stage's plan. */
export interface FactoryContextStagePlan {
  stage_idx: number;
  stage_id: number;
  stage_type: string;
  stage: StageConfig;
  /** What late replicas are built from (a plan's template replica); null: the stage gets no context. */
  template: { metadata: StageMetadata; engine_args?: EngineArgs } | null;
}

/**
 * Snapshot of each logical stage's construction context, keyed by configured stage id
 * (upstream `capture_stage_factory_contexts`). Upstream takes replica 0 as the template and
 * skips a stage without replicas; a stage plan here carries its template even with `num_replicas: 0`
 * (agents fill it), so only a stage given without one is skipped. Per-replica fields are filled
 * when a replica is built, not here.
 *
 * @throws OmniError `OMNI_CONFIG_INVALID` when two plans share a stage id (upstream's dict would
 *   keep the last one silently, and late replicas would be built from the wrong stage).
 */
export function captureStageFactoryContexts(
  stagePlans: readonly FactoryContextStagePlan[],
  diffusionBatchSize: number,
): Map<number, StageRemoteFactoryContext> {
  const contexts = new Map<number, StageRemoteFactoryContext>();
  for (const plan of stagePlans) {
    const template = plan.template;
    if (template === null) continue;
    if (contexts.has(plan.stage_id)) {
      throw new OmniError('OMNI_CONFIG_INVALID', `Two stages have stage_id ${plan.stage_id}.`, {
        location: plan.stage.locations.at('stage_id'),
        context: { stage_id: plan.stage_id, stage_idx: plan.stage_idx, phase: 'plan' },
        hint: 'give every stage a distinct stage_id',
      });
    }
    contexts.set(plan.stage_id, {
      stage_id: plan.stage_id,
      stage_type: template.metadata.stage_type === '' ? 'llm' : template.metadata.stage_type,
      stage: plan.stage,
      base_metadata: template.metadata,
      engine_args: template.engine_args ?? null,
      diffusion_batch_size: diffusionBatchSize,
    });
  }
  return contexts;
}
