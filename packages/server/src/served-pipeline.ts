import { speechRoute, type SpeechRoute } from './speech-stage.js';
import { createRouter } from '@omnistage/core';
import type { BalancePolicy, EventBus, Omnistage, PipelineOutput, RunningPipeline } from '@omnistage/core';

/** One stage as the HTTP layer sees it. */
export interface ServedStage {
  stage_id: number;
  /** `final_output_type` of a `final_output` stage (text, audio, image, ...); null for an inner stage. */
  final_output_type: string | null;
}

/** What one request asks of the pipeline. */
export interface ServedRequest {
  requestId: string;
  signal: AbortSignal;
  /** Sampling params per stage id (merged by the engine over the stage's defaults). */
  params: Record<number, Record<string, unknown>>;
  /** The final stages wanted; only they and their sources run. */
  finalStages: readonly number[];
  /** The stage that takes the input, the stages before it skipped (speech enters at its speech stage). */
  entryStage?: number;
}

/**
 * The pipeline behind the server: everything the HTTP layer needs and nothing more. Built from a
 * running pipeline by {@link servePipeline} — the one place that touches core's bring-up API, so a
 * change there is a change here only.
 */
export interface ServedPipeline {
  /** Stages in pipeline order. */
  readonly stages: readonly ServedStage[];
  /** Where `/v1/audio/speech` enters and which stage's audio it returns; null: the pipeline has no speech stage. */
  readonly speech: SpeechRoute | null;
  generate(input: unknown, request: ServedRequest): AsyncIterable<PipelineOutput>;
  /** Replicas of the stage that are attached and serving now. */
  liveReplicas(stageId: number): number;
  /** The orchestrator's events (metrics read them). */
  readonly events: EventBus;
}

/** Adapts a running pipeline of core to {@link ServedPipeline}. */
export function servePipeline(
  omni: Omnistage,
  running: RunningPipeline,
  options: {
    balance?: BalancePolicy | undefined;
    maxInflightPerReplica?: number | undefined;
    /** `--speech-stage`: the stage `/v1/audio/speech` enters at (default: see {@link speechRoute}). */
    speechStage?: number | undefined;
  } = {},
): ServedPipeline {
  const router = createRouter(running, {
    ...(options.balance === undefined ? {} : { balance: options.balance }),
    ...(options.maxInflightPerReplica === undefined ? {} : { maxInflightPerReplica: options.maxInflightPerReplica }),
  });
  const candidates = running.plan.stages.map((s) => {
    const cfg = s.stage;
    const modelStage = cfg?.engine_args['model_stage'];
    return {
      stage_id: s.stage_id,
      final_output_type: cfg?.final_output ? (cfg.final_output_type ?? 'text') : null,
      model_stage: typeof modelStage === 'string' ? modelStage : null,
      sources: cfg?.engine_input_source ?? [],
    };
  });
  return {
    stages: candidates.map((s) => ({ stage_id: s.stage_id, final_output_type: s.final_output_type })),
    speech: speechRoute(candidates, options.speechStage),
    events: omni.events,
    generate: (input, r) =>
      router.generate(input, {
        requestId: r.requestId,
        signal: r.signal,
        params: r.params,
        finalStages: r.finalStages,
        ...(r.entryStage === undefined ? {} : { entryStage: r.entryStage }),
      }),
    liveReplicas: (stageId) => running.liveReplicas(stageId).length,
  };
}
