import type { FastifyPluginAsync } from 'fastify';
import { badField } from '../http-error.js';
import { IMAGE_RULES, refuseUnsupported } from '../openai-fields.js';
import { MAX_IMAGE_SIDE, imageGenerationBody, type ImageGenerationRequest } from '../schemas.js';
import { checkModel, generatePieces, nowSeconds, stageParams, stagesOfType, servedPipeline } from './generation.js';

/** The diffusion fields of the request, as the image stage's sampling params. */
function diffusionParams(body: ImageGenerationRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (body.n !== undefined && body.n !== null) out['num_outputs_per_prompt'] = body.n;
  if (body.size !== undefined && body.size !== null && body.size !== 'auto') {
    const [w, h] = body.size.split('x').map(Number) as [number, number];
    if (w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE)
      throw badField(
        'size',
        `size "${body.size}" is larger than ${MAX_IMAGE_SIDE}x${MAX_IMAGE_SIDE}; ask for a smaller image`,
      );
    out['width'] = w;
    out['height'] = h;
  }
  for (const k of ['seed', 'num_inference_steps', 'guidance_scale', 'negative_prompt'] as const)
    if (body[k] !== undefined) out[k] = body[k];
  return out;
}

/** `POST /v1/images/generations`: prompt in, `n` PNGs out as `b64_json` (the pipeline's image stage). */
export const imagesRoutes: FastifyPluginAsync = async (app) => {
  app.post('/images/generations', { schema: { body: imageGenerationBody } }, async (request, reply) => {
    const endpoint = request.routeOptions.url ?? '/images/generations';
    const body = request.body as ImageGenerationRequest;
    checkModel(app, body.model);
    refuseUnsupported(body, IMAGE_RULES);
    const p = servedPipeline(app);
    const imageStage = stagesOfType(p, 'image', endpoint)[0]!;
    const params = stageParams(p, {}, { [imageStage]: diffusionParams(body) });
    const scope = app.requestScopes.open(request, reply);
    const data: { b64_json: string }[] = [];
    try {
      for await (const piece of generatePieces(app, scope, endpoint, body.prompt, [imageStage], params)) {
        if (piece.type === 'image' && piece.stage_id === imageStage) data.push({ b64_json: piece.data_base64 });
      }
    } catch (err) {
      throw scope.errorFor(err);
    }
    return { created: nowSeconds(), data };
  });
};
