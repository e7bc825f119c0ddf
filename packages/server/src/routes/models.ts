import type { FastifyPluginAsync } from 'fastify';

/** `GET /v1/models`: the one model this server serves. */
export const modelsRoutes: FastifyPluginAsync = async (app) => {
  app.get('/models', async () => ({
    object: 'list',
    data: [{ id: app.servedModel, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'omnistage' }],
  }));
};
