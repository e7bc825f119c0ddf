import type { ConnectorRef, PipelineConfig, StageConfig } from '../config/types.js';
import type { Definitions } from '../plugins/definitions.js';
import type { StagePlan, TransferPlan } from '../planning/types.js';

/** The processor a `custom_process_next_stage_input_func` names: its last dotted (or `#`) segment. */
export function nextStageProcessorName(stage: StageConfig): string | null {
  const spec = stage.engine_args['custom_process_next_stage_input_func'];
  if (typeof spec !== 'string' || spec === '') return null;
  return spec.slice(Math.max(spec.lastIndexOf('.'), spec.lastIndexOf('#')) + 1);
}

function connectorExtra(ref: ConnectorRef | undefined, config: PipelineConfig): Record<string, unknown> {
  if (ref === undefined) return {};
  const spec = typeof ref === 'string' ? config.connectors[ref] : ref;
  return { ...(spec?.extra ?? {}) };
}

/**
 * Marks the edges that stream, upstream's rule: the pipeline sets `async_chunk: true` and the
 * producer's next-stage input processor is an async-chunk one this run knows (core's or a
 * plugin's). The consumer's engine must read streamed input (`streamsInput`); one that cannot
 * receives its whole input as without streaming. A stage streams from one source at most (its
 * first streaming one) and waits for the others.
 */
export function applyStreamingEdges(
  stages: StagePlan[],
  transfers: TransferPlan[],
  config: PipelineConfig,
  definitions: Definitions,
): void {
  if (!config.async_chunk) return;
  const byId = new Map(stages.map((s) => [s.stage_id, s] as const));
  const streamsInto = new Set<number>();
  for (const transfer of transfers) {
    const producer = byId.get(transfer.from)?.replicas[0];
    const consumer = byId.get(transfer.to)?.replicas[0];
    if (producer === undefined || consumer === undefined || streamsInto.has(transfer.to)) continue;
    const name = nextStageProcessorName(producer.stage);
    const processor = name === null ? undefined : definitions.chunkProcessor(name);
    if (processor === undefined) continue;
    const streams = definitions.engine(consumer.stage_type, consumer.engine)?.streamsInput;
    if (!(typeof streams === 'function' ? streams(consumer.stage) : streams === true)) continue;
    streamsInto.add(transfer.to);
    const options = connectorExtra(consumer.stage.input_connectors[`from_stage_${transfer.from}`], config);
    transfer.streaming = { processor: processor.name, options };
    byId.get(transfer.to)!.streamed_input = { from: transfer.from, processor, options };
  }
}
