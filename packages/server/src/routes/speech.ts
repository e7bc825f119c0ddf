import type { FastifyPluginAsync } from 'fastify';
import { HttpError } from '../http-error.js';
import { speechBody, type SpeechRequest } from '../schemas.js';
import { checkModel, generatePieces, stageParams, stagesOfType, servedPipeline } from './generation.js';

/** `POST /v1/audio/speech`: text in, WAV bytes out (the pipeline's audio stage); `voice` reaches that stage. */
export const speechRoutes: FastifyPluginAsync = async (app) => {
  app.post('/audio/speech', { schema: { body: speechBody } }, async (request, reply) => {
    const endpoint = request.routeOptions.url ?? '/audio/speech';
    const body = request.body as SpeechRequest;
    checkModel(app, body.model);
    const p = servedPipeline(app);
    const audioStage = stagesOfType(p, 'audio', endpoint)[0]!;
    const params = stageParams(p, {}, body.voice === undefined ? {} : { [audioStage]: { voice: body.voice } });
    const scope = app.requestScopes.open(request, reply);
    let audio: { data_base64: string; mime: string } | null = null;
    try {
      for await (const piece of generatePieces(app, scope, endpoint, body.input, [audioStage], params)) {
        if (piece.type === 'audio' && piece.stage_id === audioStage) audio = piece;
      }
    } catch (err) {
      throw scope.errorFor(err);
    }
    if (!audio) throw new HttpError(502, 'OMNI_REQUEST_FAILED', `stage ${audioStage} finished without audio output`);
    return reply.type(audio.mime).send(Buffer.from(audio.data_base64, 'base64'));
  });
};
