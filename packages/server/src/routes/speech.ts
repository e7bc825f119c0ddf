import type { FastifyInstance } from 'fastify';
import { HttpError } from '../http-error.js';
import { speechBody, type SpeechRequest } from '../schemas.js';
import { checkModel, generatePieces, stageParams, stagesOfType, type GenerationContext } from './generation.js';

const ENDPOINT = '/v1/audio/speech';

/** `POST /v1/audio/speech`: text in, WAV bytes out (the pipeline's audio stage); `voice` reaches that stage. */
export function speechRoute(app: FastifyInstance, ctx: GenerationContext): void {
  app.post(ENDPOINT, { schema: { body: speechBody }, config: { generation: true } }, async (request, reply) => {
    const body = request.body as SpeechRequest;
    checkModel(ctx, body.model);
    const p = ctx.pipeline();
    const audioStage = stagesOfType(p, 'audio', ENDPOINT)[0]!;
    const params = stageParams(p, {}, body.voice === undefined ? {} : { [audioStage]: { voice: body.voice } });
    const scope = ctx.openScope(request, reply);
    let audio: { data_base64: string; mime: string } | null = null;
    try {
      for await (const piece of generatePieces(ctx, scope, ENDPOINT, body.input, [audioStage], params)) {
        if (piece.type === 'audio' && piece.stage_id === audioStage) audio = piece;
      }
    } catch (err) {
      throw scope.errorFor(err);
    }
    if (!audio) throw new HttpError(502, 'OMNI_REQUEST_FAILED', `stage ${audioStage} finished without audio output`);
    return reply.type(audio.mime).send(Buffer.from(audio.data_base64, 'base64'));
  });
}
