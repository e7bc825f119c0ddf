import type { FastifyPluginAsync } from 'fastify';
import { completionBody, type CompletionRequest } from '../schemas.js';
import { openSse, type SseStream } from '../sse.js';
import { checkModel, generatePieces, nowSeconds, stageParams, stagesOfType, servedPipeline } from './generation.js';

/** `POST /v1/completions`: prompt in, text out (the pipeline's first text stage), streaming or not. */
export const completionsRoutes: FastifyPluginAsync = async (app) => {
  app.post('/completions', { schema: { body: completionBody } }, async (request, reply) => {
    const endpoint = request.routeOptions.url ?? '/completions';
    const body = request.body as CompletionRequest;
    checkModel(app, body.model);
    const p = servedPipeline(app);
    const textStage = stagesOfType(p, 'text', endpoint)[0]!;
    const params = stageParams(p, body);
    const scope = app.requestScopes.open(request, reply);
    const head = {
      id: `cmpl-${scope.requestId}`,
      object: 'text_completion',
      created: nowSeconds(),
      model: app.servedModel,
    };
    const pieces = generatePieces(app, scope, endpoint, body.prompt, [textStage], params);
    const choice = (text: string, finish: string | null): unknown => ({
      ...head,
      choices: [{ index: 0, text, finish_reason: finish, logprobs: null }],
    });

    if (body.stream) {
      let sse: SseStream | null = null;
      try {
        for await (const piece of pieces) {
          if (piece.stage_id !== textStage) continue;
          sse ??= openSse(reply);
          if (piece.type === 'text-delta') sse.send(choice(piece.text, null));
          else if (piece.type === 'text-final') sse.send(choice('', piece.finish_reason));
        }
        (sse ??= openSse(reply)).end();
      } catch (err) {
        const e = scope.errorFor(err);
        if (sse === null) throw e;
        (sse as SseStream).fail(e);
      }
      return reply;
    }
    let text = '';
    let finish = 'stop';
    try {
      for await (const piece of pieces) {
        if (piece.stage_id === textStage && piece.type === 'text-final') {
          text = piece.text;
          finish = piece.finish_reason;
        }
      }
    } catch (err) {
      throw scope.errorFor(err);
    }
    return choice(text, finish);
  });
};
