import type { FastifyPluginAsync } from 'fastify';
import { admissionHook, type Admission } from '../admission.js';
import { chatRoutes } from './chat.js';
import { completionsRoutes } from './completions.js';
import { imagesRoutes } from './images.js';
import { modelsRoutes } from './models.js';
import { responsesRoutes } from './responses.js';
import { speechRoutes } from './speech.js';

/** Options of {@link v1Routes}. */
export interface V1Options {
  /** `--max-inflight`, shared by every generation route. */
  admission: Admission;
}

/** The generation routes: each request passes admission (state, `--max-inflight`) before it runs. */
const generationRoutes: FastifyPluginAsync<V1Options> = async (app, { admission }) => {
  app.addHook('onRequest', admissionHook(admission));
  await app.register(chatRoutes);
  await app.register(completionsRoutes);
  await app.register(imagesRoutes);
  await app.register(speechRoutes);
  await app.register(responsesRoutes);
};

/** OpenAI's API, registered under the `/v1` prefix. */
export const v1Routes: FastifyPluginAsync<V1Options> = async (app, { admission }) => {
  await app.register(modelsRoutes);
  // Only what the scope needs: passing fastify's own `prefix` on would prefix the routes twice.
  await app.register(generationRoutes, { admission });
};
