import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { HttpError } from '../http-error.js';

const model = (app: FastifyInstance): Record<string, unknown> => ({
  id: app.servedModel,
  object: 'model',
  created: Math.floor(Date.now() / 1000),
  owned_by: 'omnistage',
});

/** `GET /v1/models` (the one model this server serves) and `GET /v1/models/{id}` (`models.retrieve`). */
export const modelsRoutes: FastifyPluginAsync = async (app) => {
  app.get('/models', async () => ({ object: 'list', data: [model(app)] }));
  app.get<{ Params: { id: string } }>('/models/:id', async (request) => {
    if (request.params.id !== app.servedModel) {
      throw new HttpError(
        404,
        'OMNI_HTTP_INVALID_REQUEST',
        `the model "${request.params.id}" does not exist; this server serves "${app.servedModel}" (GET /v1/models)`,
        { param: 'model' },
      );
    }
    return model(app);
  });
};
