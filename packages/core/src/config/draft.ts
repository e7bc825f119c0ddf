import type { Diagnostic } from '../diagnostics.js';
import type { SourceLocation } from '../errors.js';
import type { PipelineConfig } from './types.js';
import type { SourcedMap } from './sourced.js';

/**
 * A stage after its schema-specific front end (legacy or deploy) but before validation into a
 * `StageConfig`: already in the legacy `stage_args` shape, still a sourced tree so
 * --stage-overrides can patch it and every value keeps its location.
 */
export interface StageDraft {
  stageId: number;
  node: SourcedMap;
  /** Where the stage itself is written; the fallback of its LocationIndex. */
  loc: SourceLocation;
  /** Model-specific keys a registered pipeline adds to `StageConfig.extras` (the file's own win). */
  extras?: Record<string, unknown>;
  /** Engine args `--stage-overrides` named bare (not under `engine_args`); see `StageConfig.override_args`. */
  overrideArgs?: string[];
}

/** A whole pipeline between the front ends and the final build. */
export interface PipelineDraft {
  file: string;
  schema: PipelineConfig['schema'];
  topology: PipelineConfig['topology'];
  pipeline: string | null;
  pipelineSelectedBy: PipelineConfig['pipeline_selected_by'];
  asyncChunk: boolean;
  /**
   * Top-level keys under their normalised names (`connectors`, `edges`, `plugins`, `model`, `modes`,
   * `async_chunk`, ...): legacy `runtime.connectors` appears here as `connectors`.
   */
  top: SourcedMap;
  stages: StageDraft[];
  warnings: Diagnostic[];
}
