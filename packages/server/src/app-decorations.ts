import type { ServerMetrics } from './metrics.js';
import type { RequestScopes } from './request-scopes.js';
import type { ServedPipeline } from './served-pipeline.js';

/** Where the server is in its lifecycle: answering 503 until attached, serving, then draining. */
export type ServingState = 'starting' | 'serving' | 'draining';

// What OmniServer decorates its fastify instance with; route plugins read these and nothing else.
declare module 'fastify' {
  interface FastifyInstance {
    /** The pipeline behind the server; null while it comes up. */
    readonly pipeline: ServedPipeline | null;
    readonly servingState: ServingState;
    readonly metrics: ServerMetrics;
    /** The `model` clients send and `GET /v1/models` lists. */
    readonly servedModel: string;
    /** The generation requests running now (the drain aborts them at its deadline). */
    readonly requestScopes: RequestScopes;
  }
  interface FastifyRequest {
    /** The error code of a stream that failed after its 200 was sent (counted apart); null otherwise. */
    failedAfterHeaders: string | null;
  }
}
