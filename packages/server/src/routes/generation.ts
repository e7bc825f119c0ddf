import type { FastifyInstance } from 'fastify';
import { HttpError, badField } from '../http-error.js';
import { pieceOf, type OutputPiece, type Usage } from '../outputs.js';
import type { RequestScope } from '../request-scope.js';
import type { SamplingFields } from '../schemas.js';
import type { ServedPipeline } from '../served-pipeline.js';

/** The pipeline; 503 while there is none (still coming up). */
export function servedPipeline(app: FastifyInstance): ServedPipeline {
  if (!app.pipeline)
    throw new HttpError(503, 'OMNI_HTTP_UNAVAILABLE', 'the pipeline is still coming up', {
      headers: { 'retry-after': '5' },
    });
  return app.pipeline;
}

/** 404 for a `model` this server does not serve (as OpenAI and vLLM answer). */
export function checkModel(app: FastifyInstance, model: string | undefined): void {
  if (model !== undefined && model !== app.servedModel) {
    throw new HttpError(
      404,
      'OMNI_HTTP_INVALID_REQUEST',
      `the model "${model}" does not exist; this server serves "${app.servedModel}" (GET /v1/models)`,
      { param: 'model' },
    );
  }
}

/** The pipeline's final output types, for messages. */
export function finalTypes(p: ServedPipeline): string[] {
  return [...new Set(p.stages.flatMap((s) => (s.final_output_type ? [s.final_output_type] : [])))];
}

/** The final stages of one output type; 404 naming what the pipeline has when there is none. */
export function stagesOfType(p: ServedPipeline, type: string, route: string): number[] {
  const ids = p.stages.filter((s) => s.final_output_type === type).map((s) => s.stage_id);
  if (ids.length === 0) {
    throw new HttpError(
      404,
      'OMNI_HTTP_INVALID_REQUEST',
      `${route} needs a final stage producing ${type}; this pipeline's final outputs are: ${finalTypes(p).join(', ') || 'none'}`,
    );
  }
  return ids;
}

/**
 * Sampling params per stage id: OpenAI's top-level fields go to the first stage (the one that
 * reads the prompt); `sampling_params_list[i]` (pipeline stage order, vLLM-Omni's field) is merged
 * over them for stage i; `extra` (route-specific, e.g. image size) last.
 */
export function stageParams(
  p: ServedPipeline,
  body: SamplingFields,
  extra: Record<number, Record<string, unknown>> = {},
): Record<number, Record<string, unknown>> {
  const out: Record<number, Record<string, unknown>> = {};
  const top: Record<string, unknown> = {};
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  if (maxTokens !== undefined && maxTokens !== null) top['max_tokens'] = maxTokens;
  for (const k of [
    'temperature',
    'top_p',
    'top_k',
    'seed',
    'stop',
    'frequency_penalty',
    'presence_penalty',
    'logit_bias',
  ] as const)
    if (body[k] !== undefined && body[k] !== null) top[k] = body[k];
  if (Object.keys(top).length > 0) out[p.stages[0]!.stage_id] = top;
  const list = body.sampling_params_list ?? [];
  if (list.length > p.stages.length) {
    throw badField(
      'sampling_params_list',
      `sampling_params_list has ${list.length} entries; this pipeline has ${p.stages.length} stage(s) (one entry per stage, in order; null keeps a stage's defaults)`,
    );
  }
  list.forEach((entry, i) => {
    if (entry) out[p.stages[i]!.stage_id] = { ...out[p.stages[i]!.stage_id], ...entry };
  });
  for (const [id, params] of Object.entries(extra)) out[Number(id)] = { ...out[Number(id)], ...params };
  return out;
}

/** `params` with `extra` merged into the params of each of `stageIds` (e.g. a voice for the audio stages). */
export function withStageParams(
  params: Record<number, Record<string, unknown>>,
  stageIds: readonly number[],
  extra: Record<string, unknown>,
): Record<number, Record<string, unknown>> {
  if (Object.keys(extra).length === 0) return params;
  const out = { ...params };
  for (const id of stageIds) out[id] = { ...out[id], ...extra };
  return out;
}

/** Runs one request through the pipeline, yielding what clients can be given (see {@link pieceOf}). */
export async function* generatePieces(
  app: FastifyInstance,
  scope: RequestScope,
  endpoint: string,
  input: unknown,
  finalStages: readonly number[],
  params: Record<number, Record<string, unknown>>,
  part: number | null = null,
  entryStage?: number,
): AsyncGenerator<OutputPiece> {
  const p = servedPipeline(app);
  const types = new Map(p.stages.map((s) => [s.stage_id, s.final_output_type] as const));
  for await (const out of p.generate(input, {
    requestId: part === null ? scope.requestId : `${scope.requestId}-${part}`,
    signal: scope.signal,
    params,
    finalStages,
    ...(entryStage === undefined ? {} : { entryStage }),
  })) {
    if (scope.firstChunk())
      app.metrics.timeToFirstChunk.observe({ endpoint }, (performance.now() - scope.startedAt) / 1000);
    const piece = pieceOf(out, types.get(out.stage_id) ?? null);
    if (piece) yield piece;
  }
}

/** The usage of several answers of one request (a completions `prompt` array), summed. */
export function sumUsage(usages: readonly Usage[]): Usage {
  const prompt = usages.reduce((a, u) => a + u.prompt_tokens, 0);
  const completion = usages.reduce((a, u) => a + u.completion_tokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Seconds since the epoch, as OpenAI's `created`. */
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);
