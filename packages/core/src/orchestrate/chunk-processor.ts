import type { StageConfig } from '../config/types.js';

/** What a chunk processor knows of its streaming edge and request. */
export interface ChunkProcessorContext {
  request_id: string;
  /** The stage that produces the chunks. */
  from: StageConfig;
  /** The stage whose input they become. */
  to: StageConfig;
  /**
   * The edge's options: the `extra` of the connector the consumer names for this edge
   * (`input_connectors.from_stage_<id>`), e.g. `codec_chunk_frames`.
   */
  options: Readonly<Record<string, unknown>>;
  /** The consumer's request params (per-request overrides such as `initial_codec_chunk_frames`). */
  params: Readonly<Record<string, unknown>>;
}

/**
 * Turns the outputs of a streaming edge's producer into its consumer's input chunks, for one
 * request (upstream's async-chunk next-stage input processors). Runs in the orchestrator, per chunk,
 * in order; what it returns is sent on at once (flow control holds the producer when the consumer
 * lags). Payload references it passes on keep their lifetimes; one it drops is freed when the
 * request ends.
 */
export interface ChunkProcessor {
  /** A partial output of the producer: the input chunks it gives now (none, one or several). */
  chunk(data: unknown): unknown[];
  /** The producer's final output: the last input chunks (what is still collected, ...). */
  end(data: unknown): unknown[];
}

/**
 * A named chunk processor (`omni.defineChunkProcessor`): the name is what a stage's
 * `custom_process_next_stage_input_func` ends with (`...qwen3_omni.thinker2talker_async_chunk`, or
 * a plugin's own `my_async_chunk`). `create` runs once per request and edge.
 */
export interface ChunkProcessorDefinition {
  readonly name: string;
  create(ctx: ChunkProcessorContext): ChunkProcessor;
}
