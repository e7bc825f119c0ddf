import type { PlanContext } from '../hooks/contexts.js';
import type { Definitions } from '../plugins/definitions.js';
import type { InputProcessor, StagePlan, TransferPlan } from '../planning/types.js';

/** What the engines that drive edges themselves decided: the transfers marked, and their input processors. */
export interface EdgeFlows {
  readonly transfers: TransferPlan[];
  /** Per consumer stage id, the input processor of the flow into it. */
  readonly inputProcessors: ReadonlyMap<number, InputProcessor>;
}

/**
 * Asks each consumer's engine whether it drives the edge from its source itself
 * (`EngineDefinition.edgeFlow`): a flow marks the edge's transfer with what each side is sent and
 * becomes the consumer's input processor, unless the stage has its own `custom_process_input_func`.
 * Only a stage with exactly one source can be driven: its request is built from that one answer.
 */
export function applyEdgeFlows(
  stages: readonly StagePlan[],
  transfers: readonly TransferPlan[],
  definitions: Definitions,
  ctx: PlanContext,
): EdgeFlows {
  const byId = new Map(stages.map((s) => [s.stage_id, s] as const));
  const flows = new Map<string, string>();
  const inputProcessors = new Map<number, InputProcessor>();
  for (const consumer of stages) {
    const sources = consumer.stage.engine_input_source;
    if (sources.length !== 1) continue;
    const producer = byId.get(sources[0]!);
    const engine = definitions.engine(consumer.stage_type, consumer.engine);
    const flow = producer === undefined ? undefined : engine?.edgeFlow?.(producer, consumer, ctx);
    if (flow === undefined) continue;
    flows.set(`${sources[0]}->${consumer.stage_id}`, flow.description);
    inputProcessors.set(consumer.stage_id, flow.inputProcessor);
  }
  return {
    transfers: transfers.map((t) => {
      const flow = flows.get(`${t.from}->${t.to}`);
      return flow === undefined ? t : { ...t, flow };
    }),
    inputProcessors,
  };
}
