import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { chatStageInput } from '../chat-input.js';
import { badField } from '../http-error.js';
import { CHAT_RULES, refuseUnsupported } from '../openai-fields.js';
import type { OutputPiece, Usage } from '../outputs.js';
import type { RequestScope } from '../request-scope.js';
import { chatCompletionBody, type ChatCompletionRequest } from '../schemas.js';
import { openSse } from '../sse.js';
import type { ServedPipeline } from '../served-pipeline.js';
import { audioFormat, encodeAudio, type AudioFormat } from '../wav.js';
import {
  checkModel,
  finalTypes,
  generatePieces,
  nowSeconds,
  servedPipeline,
  stageParams,
  withStageParams,
} from './generation.js';

/** One choice per requested modality (vLLM-Omni answers each output modality as its own choice). */
interface ModalityChoice {
  index: number;
  modality: string;
  stages: Set<number>;
}

/** OpenAI's `audio.format` values the server can produce from an audio stage's WAV. */
const CHAT_AUDIO_FORMATS: readonly AudioFormat[] = [
  { name: 'wav', mime: 'audio/wav', pcm: false },
  { name: 'pcm16', mime: 'audio/pcm', pcm: true },
];

/** The modalities asked for; without `modalities`, text as OpenAI defaults (all outputs of a pipeline without text). */
function modalityChoices(p: ServedPipeline, requested: string[] | null | undefined): ModalityChoice[] {
  const have = finalTypes(p);
  const wanted = requested ?? (have.includes('text') ? ['text'] : have);
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

const imagePart = (piece: { mime: string; data_base64: string }): unknown => ({
  type: 'image_url',
  image_url: { url: `data:${piece.mime};base64,${piece.data_base64}` },
});

/** What one chat request needs once checked: its choices, the pieces it produces, the answer's head. */
interface ChatRun {
  choices: ModalityChoice[];
  pieces: AsyncIterable<OutputPiece>;
  scope: RequestScope;
  head: { id: string; created: number; model: string };
  audio: AudioFormat;
  choiceOf(piece: OutputPiece): ModalityChoice | undefined;
  audioData(piece: { data_base64: string }): string;
}

/** `POST /v1/chat/completions`: messages in (text, images, audio), text/audio/image out, streaming or not. */
export const chatRoutes: FastifyPluginAsync = async (app) => {
  app.post('/chat/completions', { schema: { body: chatCompletionBody } }, async (request, reply) => {
    const body = request.body as ChatCompletionRequest;
    checkModel(app, body.model);
    refuseUnsupported(body, CHAT_RULES);
    const p = servedPipeline(app);
    const input = chatStageInput(body);
    const choices = modalityChoices(p, body.modalities);
    const audio = audioFormat(body.audio?.format, CHAT_AUDIO_FORMATS, 'audio.format');
    const voice = typeof body.audio?.voice === 'object' ? body.audio.voice.id : body.audio?.voice;
    const audioStages = choices.filter((c) => c.modality === 'audio').flatMap((c) => [...c.stages]);
    const params = withStageParams(stageParams(p, body), audioStages, voice === undefined ? {} : { voice });
    const finalStages = choices.flatMap((c) => [...c.stages]);
    const scope = app.requestScopes.open(request, reply);
    const endpoint = request.routeOptions.url ?? '/chat/completions';
    const run: ChatRun = {
      choices,
      scope,
      audio,
      pieces: generatePieces(app, scope, endpoint, input, finalStages, params),
      head: { id: `chatcmpl-${scope.requestId}`, created: nowSeconds(), model: app.servedModel },
      choiceOf: (piece) => choices.find((c) => c.stages.has(piece.stage_id)),
      audioData: (piece) =>
        audio.pcm ? encodeAudio(Buffer.from(piece.data_base64, 'base64'), audio).toString('base64') : piece.data_base64,
    };
    if (body.stream) return streamChat(run, reply, body.stream_options?.include_usage === true);
    return answerChat(run);
  });
};

/** The whole answer at once: one message per modality, `usage` from the text stage. */
async function answerChat(run: ChatRun): Promise<Record<string, unknown>> {
  const { scope, head } = run;
  const messages = new Map<number, Record<string, unknown>>();
  const finish = new Map<number, string>();
  let transcript = '';
  let usage: Usage | null = null;
  try {
    for await (const piece of run.pieces) {
      if (piece.type === 'text-final') {
        transcript ||= piece.text;
        usage ??= piece.usage;
      }
      const c = run.choiceOf(piece);
      if (!c) continue;
      const m = messages.get(c.index) ?? { role: 'assistant', content: null };
      if (piece.type === 'text-final') {
        m['content'] = piece.text;
        finish.set(c.index, piece.finish_reason);
      } else if (piece.type === 'audio')
        m['audio'] = { id: `audio-${scope.requestId}`, data: run.audioData(piece), expires_at: head.created + 3600 };
      else if (piece.type === 'image') m['content'] = [...((m['content'] as unknown[] | null) ?? []), imagePart(piece)];
      messages.set(c.index, m);
    }
  } catch (err) {
    throw scope.errorFor(err);
  }
  for (const m of messages.values()) if (m['audio']) (m['audio'] as { transcript: string }).transcript = transcript;
  return {
    ...head,
    object: 'chat.completion',
    choices: run.choices.map((c) => ({
      index: c.index,
      message: messages.get(c.index) ?? { role: 'assistant', content: null },
      finish_reason: finish.get(c.index) ?? 'stop',
      logprobs: null,
    })),
    usage: usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  };
}

/**
 * Server-Sent Events: text deltas as `delta.content`, audio and images as they come, a finish
 * chunk per choice, and with `stream_options.include_usage` a last chunk of no choices carrying
 * `usage` (every other chunk says `usage: null`, as OpenAI's do).
 */
async function streamChat(run: ChatRun, reply: FastifyReply, includeUsage: boolean): Promise<FastifyReply> {
  const { scope, head } = run;
  let sse: ReturnType<typeof openSse> | null = null;
  const chunk = (choices: unknown[], usage?: Usage): void => {
    sse ??= openSse(reply);
    sse.send({
      ...head,
      object: 'chat.completion.chunk',
      choices,
      ...(includeUsage ? { usage: usage ?? null } : {}),
    });
  };
  const send = (index: number, delta: Record<string, unknown>, finish: string | null = null): void =>
    chunk([{ index, delta, finish_reason: finish, logprobs: null }]);
  const finished = new Set<number>();
  let usage: Usage | null = null;
  try {
    for await (const piece of run.pieces) {
      if (piece.type === 'text-final') usage ??= piece.usage;
      const c = run.choiceOf(piece);
      if (!c) continue;
      if (piece.type === 'text-delta') send(c.index, { role: 'assistant', content: piece.text });
      else if (piece.type === 'text-final') {
        send(c.index, {}, piece.finish_reason);
        finished.add(c.index);
      } else if (piece.type === 'audio')
        send(c.index, {
          role: 'assistant',
          audio: { id: `audio-${scope.requestId}`, data: run.audioData(piece), transcript: '' },
        });
      else if (piece.type === 'image') send(c.index, { role: 'assistant', content: [imagePart(piece)] });
      // Audio windows (audio-chunk) are not sent on their own yet: the client gets the whole answer's audio.
    }
    for (const c of run.choices) if (!finished.has(c.index)) send(c.index, {}, 'stop');
    if (includeUsage) chunk([], usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    (sse ??= openSse(reply)).end();
  } catch (err) {
    const e = scope.errorFor(err);
    if (sse === null) throw e;
    (sse as ReturnType<typeof openSse>).fail(e);
  }
  return reply;
}
