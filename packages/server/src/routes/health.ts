import type { FastifyInstance, FastifyPluginAsync } from 'fastify';

/** `GET /health`: 200 while the process serves (liveness; never needs a key). */
export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get('/health', async () => ({ status: 'ok' }));
};

function readiness(app: FastifyInstance): { ready: boolean; body: Record<string, unknown> } {
  if (app.servingState === 'draining') return { ready: false, body: { status: 'draining' } };
  const p = app.pipeline;
  if (!p) return { ready: false, body: { status: 'starting', message: 'the pipeline is still coming up' } };
  const stages = p.stages.map((s) => ({ stage_id: s.stage_id, replicas_up: p.liveReplicas(s.stage_id) }));
  const down = stages.filter((s) => s.replicas_up === 0);
  if (down.length > 0) {
    return {
      ready: false,
      body: {
        status: 'unavailable',
        message: `${down.map((s) => `stage ${s.stage_id}`).join(', ')} has no live replica`,
        stages,
      },
    };
  }
  return { ready: true, body: { status: 'ready', stages } };
}

/** `GET /health/ready`: 200 only while every stage has a live replica; 503 saying why otherwise. */
export const readinessRoutes: FastifyPluginAsync = async (app) => {
  app.get('/health/ready', async (_request, reply) => {
    const r = readiness(app);
    return reply.code(r.ready ? 200 : 503).send(r.body);
  });
};
