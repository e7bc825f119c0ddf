import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { chatStageInput } from '../chat-input.js';
import { RESPONSE_RULES, refuseUnsupported } from '../openai-fields.js';
import type { OutputPiece, Usage } from '../outputs.js';
import type { RequestScope } from '../request-scope.js';
import { responsesMessages } from '../responses-input.js';
import { responseBody, type ResponseRequest } from '../schemas.js';
import { openSse, type SseStream } from '../sse.js';
import { checkModel, generatePieces, nowSeconds, servedPipeline, stageParams, stagesOfType } from './generation.js';

/** The response object (OpenAI's Responses API) around one assistant message of `text`. */
function responseObject(
  id: string,
  body: ResponseRequest,
  model: string,
  state: { status: string; text: string | null; finish: string | null; usage: Usage | null },
): Record<string, unknown> {
  const message = {
    id: `msg_${id}`,
    type: 'message',
    status: state.status === 'in_progress' ? 'in_progress' : 'completed',
    role: 'assistant',
    content: state.text === null ? [] : [{ type: 'output_text', text: state.text, annotations: [], logprobs: [] }],
  };
  return {
    id: `resp_${id}`,
    object: 'response',
    created_at: nowSeconds(),
    status: state.status,
    model,
    output: state.text === null ? [] : [message],
    output_text: state.text ?? '',
    error: null,
    incomplete_details: state.status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    temperature: body.temperature ?? null,
    top_p: body.top_p ?? null,
    parallel_tool_calls: false,
    tool_choice: 'none',
    tools: [],
    text: { format: { type: 'text' } },
    metadata: (body['metadata'] as Record<string, unknown> | null | undefined) ?? {},
    usage: state.usage && {
      input_tokens: state.usage.prompt_tokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: state.usage.completion_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: state.usage.total_tokens,
    },
  };
}

const statusOf = (finish: string | null): string => (finish === 'length' ? 'incomplete' : 'completed');

/** `POST /v1/responses`: text in (a string or message items), one text message out, streamed or not. */
export const responsesRoutes: FastifyPluginAsync = async (app) => {
  app.post('/responses', { schema: { body: responseBody } }, async (request, reply) => {
    const body = request.body as ResponseRequest;
    checkModel(app, body.model);
    refuseUnsupported(body, RESPONSE_RULES);
    const endpoint = request.routeOptions.url ?? '/responses';
    const p = servedPipeline(app);
    const textStage = stagesOfType(p, 'text', endpoint)[0]!;
    const input = chatStageInput({ messages: responsesMessages(body.input, body.instructions) });
    const params = stageParams(p, {
      max_tokens: body.max_output_tokens ?? null,
      temperature: body.temperature ?? null,
      top_p: body.top_p ?? null,
    });
    const scope = app.requestScopes.open(request, reply);
    const pieces = generatePieces(app, scope, endpoint, input, [textStage], params);
    if (body.stream) return streamResponse(scope, pieces, reply, body, app.servedModel);
    let state = { status: 'completed', text: '', finish: null as string | null, usage: null as Usage | null };
    try {
      for await (const piece of pieces)
        if (piece.type === 'text-final')
          state = {
            status: statusOf(piece.finish_reason),
            text: piece.text,
            finish: piece.finish_reason,
            usage: piece.usage,
          };
    } catch (err) {
      throw scope.errorFor(err);
    }
    return responseObject(scope.requestId, body, app.servedModel, state);
  });
};

/**
 * The Responses API's event stream: response.created, response.in_progress, output_item.added,
 * content_part.added, output_text.delta per chunk, output_text.done, content_part.done,
 * output_item.done, response.completed (or response.failed after an error), each numbered.
 */
async function streamResponse(
  scope: RequestScope,
  pieces: AsyncIterable<OutputPiece>,
  reply: FastifyReply,
  body: ResponseRequest,
  model: string,
): Promise<FastifyReply> {
  const id = scope.requestId;
  const sse: SseStream = openSse(reply, { done: false });
  let seq = 0;
  const emit = (type: string, event: Record<string, unknown>): void =>
    sse.sendNamed(type, { sequence_number: seq++, ...event });
  const at = { item_id: `msg_${id}`, output_index: 0, content_index: 0 };
  const started = responseObject(id, body, model, { status: 'in_progress', text: null, finish: null, usage: null });
  emit('response.created', { response: started });
  emit('response.in_progress', { response: started });
  const item = (status: string, text: string | null): unknown =>
    (
      responseObject(id, body, model, { status, text: text ?? '', finish: null, usage: null })['output'] as unknown[]
    )[0];
  emit('response.output_item.added', {
    output_index: 0,
    item: { ...(item('in_progress', '') as object), content: [] },
  });
  const part = (text: string): unknown => ({ type: 'output_text', text, annotations: [], logprobs: [] });
  emit('response.content_part.added', { ...at, part: part('') });
  let text = '';
  try {
    let done: Extract<OutputPiece, { type: 'text-final' }> | null = null;
    for await (const piece of pieces) {
      if (piece.type === 'text-delta') {
        text += piece.text;
        emit('response.output_text.delta', { ...at, delta: piece.text, logprobs: [] });
      } else if (piece.type === 'text-final') done = piece;
    }
    text = done?.text ?? text;
    emit('response.output_text.done', { ...at, text, logprobs: [] });
    emit('response.content_part.done', { ...at, part: part(text) });
    emit('response.output_item.done', { output_index: 0, item: item('completed', text) });
    const finish = done?.finish_reason ?? null;
    const final = responseObject(id, body, model, {
      status: statusOf(finish),
      text,
      finish,
      usage: done?.usage ?? null,
    });
    emit(finish === 'length' ? 'response.incomplete' : 'response.completed', { response: final });
    sse.end();
  } catch (err) {
    const e = scope.errorFor(err);
    const failed = responseObject(id, body, model, { status: 'failed', text, finish: null, usage: null });
    emit('response.failed', { response: { ...failed, error: { code: e.code, message: e.message } } });
    sse.fail(e);
  }
  return reply;
}
