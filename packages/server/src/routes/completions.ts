import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { COMPLETION_RULES, refuseUnsupported } from '../openai-fields.js';
import type { OutputPiece, Usage } from '../outputs.js';
import type { RequestScope } from '../request-scope.js';
import { completionBody, type CompletionRequest } from '../schemas.js';
import { openSse, type SseStream } from '../sse.js';
import {
  checkModel,
  generatePieces,
  nowSeconds,
  servedPipeline,
  stageParams,
  stagesOfType,
  sumUsage,
} from './generation.js';

/** One prompt of a request and the pieces the pipeline produces for it (choice `index`). */
interface PromptRun {
  index: number;
  prompt: string;
  pieces: AsyncIterable<OutputPiece>;
  scope: RequestScope;
}

/**
 * `POST /v1/completions`: prompt in, text out (the pipeline's first text stage), streaming or not.
 * A `prompt` array runs each prompt through the pipeline, one choice each, in order.
 */
export const completionsRoutes: FastifyPluginAsync = async (app) => {
  app.post('/completions', { schema: { body: completionBody } }, async (request, reply) => {
    const body = request.body as CompletionRequest;
    checkModel(app, body.model);
    refuseUnsupported(body, COMPLETION_RULES);
    const endpoint = request.routeOptions.url ?? '/completions';
    const p = servedPipeline(app);
    const textStage = stagesOfType(p, 'text', endpoint)[0]!;
    const params = stageParams(p, body);
    const prompts = typeof body.prompt === 'string' ? [body.prompt] : (body.prompt as string[]);
    const scope = app.requestScopes.open(request, reply);
    // Each prompt of an array is a request of its own in the pipeline: its id gets the prompt's index.
    const runs: PromptRun[] = prompts.map((prompt, index) => ({
      index,
      prompt,
      scope,
      pieces: generatePieces(app, scope, endpoint, prompt, [textStage], params, prompts.length > 1 ? index : null),
    }));
    const head = {
      id: `cmpl-${scope.requestId}`,
      object: 'text_completion',
      created: nowSeconds(),
      model: app.servedModel,
    };
    const echo = body.echo === true;
    if (body.stream) return streamCompletions(runs, reply, head, echo, body.stream_options?.include_usage === true);
    const choices: unknown[] = [];
    const usages: Usage[] = [];
    try {
      for (const run of runs) {
        let text = '';
        let finish = 'stop';
        for await (const piece of run.pieces) {
          if (piece.type !== 'text-final') continue;
          text = piece.text;
          finish = piece.finish_reason;
          usages.push(piece.usage);
        }
        choices.push({
          index: run.index,
          text: echo ? run.prompt + text : text,
          finish_reason: finish,
          logprobs: null,
        });
      }
    } catch (err) {
      throw scope.errorFor(err);
    }
    return { ...head, choices, usage: sumUsage(usages) };
  });
};

/** The prompts' choices streamed one after another; `include_usage` adds a last chunk with the sum. */
async function streamCompletions(
  runs: readonly PromptRun[],
  reply: FastifyReply,
  head: Record<string, unknown>,
  echo: boolean,
  includeUsage: boolean,
): Promise<FastifyReply> {
  let sse: SseStream | null = null;
  const send = (choices: unknown[], usage?: Usage): void => {
    sse ??= openSse(reply);
    sse.send({ ...head, choices, ...(includeUsage ? { usage: usage ?? null } : {}) });
  };
  const usages: Usage[] = [];
  try {
    for (const run of runs) {
      const choice = (text: string, finish: string | null): unknown[] => [
        { index: run.index, text, finish_reason: finish, logprobs: null },
      ];
      if (echo) send(choice(run.prompt, null));
      for await (const piece of run.pieces) {
        if (piece.type === 'text-delta') send(choice(piece.text, null));
        else if (piece.type === 'text-final') {
          send(choice('', piece.finish_reason));
          usages.push(piece.usage);
        }
      }
    }
    if (includeUsage) send([], sumUsage(usages));
    (sse ??= openSse(reply)).end();
  } catch (err) {
    const e = runs[0]!.scope.errorFor(err);
    if (sse === null) throw e;
    (sse as SseStream).fail(e);
  }
  return reply;
}
