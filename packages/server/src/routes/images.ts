import type { FastifyInstance } from 'fastify';
import { imageGenerationBody, type ImageGenerationRequest } from '../schemas.js';
import {
  checkModel,
  generatePieces,
  nowSeconds,
  stageParams,
  stagesOfType,
  type GenerationContext,
} from './generation.js';

const ENDPOINT = '/v1/images/generations';

/** The diffusion fields of the request, as the image stage's sampling params. */
function diffusionParams(body: ImageGenerationRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (body.n !== undefined) out['num_outputs_per_prompt'] = body.n;
  if (body.size !== undefined) {
    const [w, h] = body.size.split('x').map(Number);
    out['width'] = w;
    out['height'] = h;
  }
  for (const k of ['seed', 'num_inference_steps', 'guidance_scale', 'negative_prompt'] as const)
    if (body[k] !== undefined) out[k] = body[k];
  return out;
}

/** `POST /v1/images/generations`: prompt in, `n` PNGs out as `b64_json` (the pipeline's image stage). */
export function imagesRoute(app: FastifyInstance, ctx: GenerationContext): void {
  app.post(
    ENDPOINT,
    { schema: { body: imageGenerationBody }, config: { generation: true } },
    async (request, reply) => {
      const body = request.body as ImageGenerationRequest;
      checkModel(ctx, body.model);
      const p = ctx.pipeline();
      const imageStage = stagesOfType(p, 'image', ENDPOINT)[0]!;
      const params = stageParams(p, {}, { [imageStage]: diffusionParams(body) });
      const scope = ctx.openScope(request, reply);
      const data: { b64_json: string }[] = [];
      try {
        for await (const piece of generatePieces(ctx, scope, ENDPOINT, body.prompt, [imageStage], params)) {
          if (piece.type === 'image' && piece.stage_id === imageStage) data.push({ b64_json: piece.data_base64 });
        }
      } catch (err) {
        throw scope.errorFor(err);
      }
      return { created: nowSeconds(), data };
    },
  );
}
