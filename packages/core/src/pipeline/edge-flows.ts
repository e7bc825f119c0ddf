import type { PlanContext } from '../hooks/contexts.js';
import type { Definitions } from '../plugins/definitions.js';
import type { StagePlan, TransferPlan } from '../planning/types.js';

/**
 * Asks each consumer's engine whether it drives the edge from its source itself
 * (`EngineDefinition.edgeFlow`): a flow marks the edge's transfer with what each side is sent and
 * becomes the consumer's input processor, unless the stage has its own `custom_process_input_func`.
 * Only a stage with exactly one source can be driven: its request is built from that one answer.
 */
export function applyEdgeFlows(
  stages: StagePlan[],
  transfers: TransferPlan[],
  definitions: Definitions,
  ctx: PlanContext,
): void {
  const byId = new Map(stages.map((s) => [s.stage_id, s] as const));
  for (const consumer of stages) {
    const head = consumer.replicas[0];
    const sources = head?.stage.engine_input_source ?? [];
    if (head === undefined || sources.length !== 1) continue;
    const producer = byId.get(sources[0]!)?.replicas[0];
    const engine = definitions.engine(consumer.stage_type, head.engine);
    const flow = producer === undefined ? undefined : engine?.edgeFlow?.(producer, head, ctx);
    if (flow === undefined) continue;
    const transfer = transfers.find((t) => t.from === sources[0] && t.to === consumer.stage_id);
    if (transfer) transfer.flow = flow.description;
    consumer.input_processor ??= flow.inputProcessor;
  }
}
