import type { ConnectorRef, PipelineConfig, StageConfig } from '../config/types.js';
import type { Definitions } from '../plugins/definitions.js';
import type { StreamedInput, TransferPlan } from '../planning/types.js';

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

/** A stage as the streaming rule reads it: its config and the engine that runs it. */
interface StreamingStage {
  readonly stage_id: number;
  readonly stage_type: string;
  readonly engine: string;
  readonly stage: StageConfig;
}

/**
 * Finds the edges that stream, upstream's rule: the pipeline sets `async_chunk: true` and the
 * producer's next-stage input processor is an async-chunk one this run knows (core's or a
 * plugin's). The consumer's engine must read streamed input (`streamsInput`); one that cannot
 * receives its whole input as without streaming. A stage streams from one source at most (its
 * first streaming one) and waits for the others. Returns the transfers with `streaming` set on
 * those edges, and each consuming stage's streamed input.
 */
export function streamingEdges(
  stages: readonly StreamingStage[],
  transfers: readonly TransferPlan[],
  config: PipelineConfig,
  definitions: Definitions,
): { transfers: TransferPlan[]; streamed: Map<number, StreamedInput> } {
  const streamed = new Map<number, StreamedInput>();
  if (!config.async_chunk) return { transfers: [...transfers], streamed };
  const byId = new Map(stages.map((s) => [s.stage_id, s] as const));
  const marked = transfers.map((transfer) => {
    const producer = byId.get(transfer.from);
    const consumer = byId.get(transfer.to);
    if (producer === undefined || consumer === undefined || streamed.has(transfer.to)) return transfer;
    const name = nextStageProcessorName(producer.stage);
    const processor = name === null ? undefined : definitions.chunkProcessor(name);
    if (processor === undefined) return transfer;
    const streams = definitions.engine(consumer.stage_type, consumer.engine)?.streamsInput;
    if (!(typeof streams === 'function' ? streams(consumer.stage) : streams === true)) return transfer;
    const options = connectorExtra(consumer.stage.input_connectors[`from_stage_${transfer.from}`], config);
    streamed.set(transfer.to, { from: transfer.from, processor, options });
    return { ...transfer, streaming: { processor: processor.name, options } };
  });
  return { transfers: marked, streamed };
}
