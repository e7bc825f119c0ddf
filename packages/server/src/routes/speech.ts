import type { FastifyPluginAsync } from 'fastify';
import { HttpError } from '../http-error.js';
import { SPEECH_RULES, refuseUnsupported } from '../openai-fields.js';
import { speechBody, type SpeechRequest } from '../schemas.js';
import { audioFormat, encodeAudio, type AudioFormat } from '../wav.js';
import { checkModel, finalTypes, generatePieces, servedPipeline, stageParams } from './generation.js';

/** `response_format` values of the speech endpoint the server can produce from an audio stage's WAV. */
const SPEECH_FORMATS: readonly AudioFormat[] = [
  { name: 'wav', mime: 'audio/wav', pcm: false },
  { name: 'pcm', mime: 'audio/pcm', pcm: true },
];

/** What the audio stage's engine receives of the request: the voice, the speed, the instructions. */
function speechParams(body: SpeechRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const voice = typeof body.voice === 'object' ? body.voice.id : body.voice;
  if (voice !== undefined) out['voice'] = voice;
  if (body.speed !== undefined) out['speed'] = body.speed;
  if (body.instructions !== undefined) out['instructions'] = body.instructions;
  return out;
}

/**
 * `POST /v1/audio/speech`: `input` enters the pipeline at its speech stage (the stages before it
 * are skipped: it speaks the text, not a model's answer to it) and the audio of the first audio
 * stage after it comes back as WAV or raw 16-bit PCM; `voice`, `speed` and `instructions` reach
 * those stages' engines.
 */
export const speechRoutes: FastifyPluginAsync = async (app) => {
  app.post('/audio/speech', { schema: { body: speechBody } }, async (request, reply) => {
    const body = request.body as SpeechRequest;
    const endpoint = request.routeOptions.url ?? '/audio/speech';
    checkModel(app, body.model);
    refuseUnsupported(body as unknown as Record<string, unknown>, SPEECH_RULES);
    const format = audioFormat(body.response_format, SPEECH_FORMATS, 'response_format');
    const p = servedPipeline(app);
    if (!p.speech)
      throw new HttpError(
        400,
        'OMNI_HTTP_INVALID_REQUEST',
        `${endpoint} needs a speech stage (a stage turning text into audio) and this pipeline has none; its final outputs are: ${finalTypes(p).join(', ') || 'none'} (omnistage serve --speech-stage ID names one)`,
      );
    const { entryStage, audioStage } = p.speech;
    // The engine options reach the stage that speaks, and the stage that renders the audio.
    const params = stageParams(p, {}, { [entryStage]: speechParams(body), [audioStage]: speechParams(body) });
    const scope = app.requestScopes.open(request, reply);
    let audio: { data_base64: string; mime: string } | null = null;
    try {
      for await (const piece of generatePieces(
        app,
        scope,
        endpoint,
        body.input,
        [audioStage],
        params,
        null,
        entryStage,
      )) {
        if (piece.type === 'audio' && piece.stage_id === audioStage) audio = piece;
      }
    } catch (err) {
      throw scope.errorFor(err);
    }
    if (!audio) throw new HttpError(502, 'OMNI_REQUEST_FAILED', `stage ${audioStage} finished without audio output`);
    const bytes = Buffer.from(audio.data_base64, 'base64');
    return reply.type(format.pcm ? format.mime : audio.mime).send(encodeAudio(bytes, format));
  });
};
