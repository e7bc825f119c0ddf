import type { FastifyPluginAsync } from 'fastify';

/** `GET /metrics`: the server's Prometheus registry in text format. */
export const metricsRoutes: FastifyPluginAsync = async (app) => {
  app.get('/metrics', async (_request, reply) =>
    reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics()),
  );
};
