import type { FastifyInstance } from 'fastify';
import { completionBody, type CompletionRequest } from '../schemas.js';
import { openSse, type SseStream } from '../sse.js';
import {
  checkModel,
  generatePieces,
  nowSeconds,
  stageParams,
  stagesOfType,
  type GenerationContext,
} from './generation.js';

const ENDPOINT = '/v1/completions';

/** `POST /v1/completions`: prompt in, text out (the pipeline's first text stage), streaming or not. */
export function completionsRoute(app: FastifyInstance, ctx: GenerationContext): void {
  app.post(ENDPOINT, { schema: { body: completionBody }, config: { generation: true } }, async (request, reply) => {
    const body = request.body as CompletionRequest;
    checkModel(ctx, body.model);
    const p = ctx.pipeline();
    const textStage = stagesOfType(p, 'text', ENDPOINT)[0]!;
    const params = stageParams(p, body);
    const scope = ctx.openScope(request, reply);
    const head = {
      id: `cmpl-${scope.requestId}`,
      object: 'text_completion',
      created: nowSeconds(),
      model: ctx.servedModel,
    };
    const pieces = generatePieces(ctx, scope, ENDPOINT, body.prompt, [textStage], params);
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
}
