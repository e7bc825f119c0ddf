import type { FastifyPluginAsync } from 'fastify';
import { chatStageInput } from '../chat-input.js';
import { badField } from '../http-error.js';
import type { OutputPiece } from '../outputs.js';
import { chatCompletionBody, type ChatCompletionRequest } from '../schemas.js';
import { openSse, type SseStream } from '../sse.js';
import type { ServedPipeline } from '../served-pipeline.js';
import { checkModel, finalTypes, generatePieces, nowSeconds, stageParams, servedPipeline } from './generation.js';

/** One choice per requested modality (vLLM-Omni answers each output modality as its own choice). */
interface ModalityChoice {
  index: number;
  modality: string;
  stages: Set<number>;
}

function modalityChoices(p: ServedPipeline, requested: string[] | undefined): ModalityChoice[] {
  const have = finalTypes(p);
  const wanted = requested ?? have;
  return [...new Set(wanted)].map((modality, index) => {
    const stages = new Set(p.stages.filter((s) => s.final_output_type === modality).map((s) => s.stage_id));
    if (stages.size === 0) {
      throw badField(
        'modalities',
        `this pipeline cannot produce "${modality}"; its final outputs are: ${have.join(', ') || 'none'}`,
      );
    }
    return { index, modality, stages };
  });
}

function choiceOf(choices: ModalityChoice[], piece: OutputPiece): ModalityChoice | undefined {
  return choices.find((c) => c.stages.has(piece.stage_id));
}

const imagePart = (piece: { mime: string; data_base64: string }): unknown => ({
  type: 'image_url',
  image_url: { url: `data:${piece.mime};base64,${piece.data_base64}` },
});

/** `POST /v1/chat/completions`: messages in (text, images, audio), text/audio/image out, streaming or not. */
export const chatRoutes: FastifyPluginAsync = async (app) => {
  app.post('/chat/completions', { schema: { body: chatCompletionBody } }, async (request, reply) => {
    const endpoint = request.routeOptions.url ?? '/chat/completions';
    const body = request.body as ChatCompletionRequest;
    checkModel(app, body.model);
    const p = servedPipeline(app);
    const input = chatStageInput(body);
    const choices = modalityChoices(p, body.modalities);
    const finalStages = choices.flatMap((c) => [...c.stages]);
    const params = stageParams(p, body);
    const scope = app.requestScopes.open(request, reply);
    const head = { id: `chatcmpl-${scope.requestId}`, created: nowSeconds(), model: app.servedModel };
    const pieces = generatePieces(app, scope, endpoint, input, finalStages, params);

    if (body.stream) {
      let sse: SseStream | null = null;
      const send = (index: number, delta: Record<string, unknown>, finish: string | null = null): void => {
        sse ??= openSse(reply);
        sse.send({
          ...head,
          object: 'chat.completion.chunk',
          choices: [{ index, delta, finish_reason: finish, logprobs: null }],
        });
      };
      const finished = new Set<number>();
      try {
        for await (const piece of pieces) {
          const c = choiceOf(choices, piece);
          if (!c) continue;
          if (piece.type === 'text-delta') send(c.index, { role: 'assistant', content: piece.text });
          else if (piece.type === 'text-final') {
            send(c.index, {}, piece.finish_reason);
            finished.add(c.index);
          } else if (piece.type === 'audio')
            send(c.index, {
              role: 'assistant',
              audio: { id: `audio-${scope.requestId}`, data: piece.data_base64, transcript: '' },
            });
          else send(c.index, { role: 'assistant', content: [imagePart(piece)] });
        }
        for (const c of choices) if (!finished.has(c.index)) send(c.index, {}, 'stop');
        (sse as SseStream | null)?.end();
      } catch (err) {
        const e = scope.errorFor(err);
        if (sse === null) throw e;
        (sse as SseStream).fail(e);
      }
      return reply;
    }

    const messages = new Map<number, Record<string, unknown>>();
    const finish = new Map<number, string>();
    let transcript = '';
    try {
      for await (const piece of pieces) {
        if (piece.type === 'text-final') transcript ||= piece.text;
        const c = choiceOf(choices, piece);
        if (!c) continue;
        const m = messages.get(c.index) ?? { role: 'assistant', content: null };
        if (piece.type === 'text-final') {
          m['content'] = piece.text;
          finish.set(c.index, piece.finish_reason);
        } else if (piece.type === 'audio')
          m['audio'] = {
            id: `audio-${scope.requestId}`,
            data: piece.data_base64,
            expires_at: head.created + 3600,
            transcript: '',
          };
        else if (piece.type === 'image')
          m['content'] = [...((m['content'] as unknown[] | null) ?? []), imagePart(piece)];
        messages.set(c.index, m);
      }
    } catch (err) {
      throw scope.errorFor(err);
    }
    for (const m of messages.values()) if (m['audio']) (m['audio'] as { transcript: string }).transcript = transcript;
    return {
      ...head,
      object: 'chat.completion',
      choices: choices.map((c) => ({
        index: c.index,
        message: messages.get(c.index) ?? { role: 'assistant', content: null },
        finish_reason: finish.get(c.index) ?? 'stop',
        logprobs: null,
      })),
    };
  });
};
