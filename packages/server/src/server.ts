import { OmniError } from '@omnistage/core';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { Admission } from './admission.js';
import { bearerMatcher } from './auth.js';
import { fromFastifyError } from './fastify-errors.js';
import { HttpError } from './http-error.js';
import { ServerMetrics } from './metrics.js';
import { RequestScope } from './request-scope.js';
import { chatRoute } from './routes/chat.js';
import { completionsRoute } from './routes/completions.js';
import type { GenerationContext } from './routes/generation.js';
import { imagesRoute } from './routes/images.js';
import { speechRoute } from './routes/speech.js';
import type { ServedPipeline } from './served-pipeline.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A route that runs the pipeline: counted against --max-inflight, refused while draining. */
    generation?: boolean;
  }
}

/** Options of {@link OmniServer}. */
export interface OmniServerOptions {
  /** The application's pino logger; fastify logs through it (request logging off: it costs throughput). */
  logger: Logger;
  /** Name clients send as `model` and `GET /v1/models` lists. */
  servedModelName: string;
  /** Bearer key every endpoint but `/health` requires (`/metrics` too unless `metricsPublic`). */
  apiKey?: string;
  metricsPublic?: boolean;
  /** Generation requests in flight before new ones get 429. Default 1024. */
  maxInflight?: number;
  /** Aborts a generation request after this long and answers 504. Default: none. */
  requestTimeoutMs?: number;
  /** Largest request body in bytes (413 above). Default 64 MiB. */
  bodyLimitBytes?: number;
  /** Default: a fresh {@link ServerMetrics}. Pass one to observe the orchestrator's events before bring-up. */
  metrics?: ServerMetrics;
}

type State = 'starting' | 'serving' | 'draining';

const GENERATION_ROUTES = ['/v1/chat/completions', '/v1/completions', '/v1/images/generations', '/v1/audio/speech'];

/**
 * The OpenAI-compatible HTTP front door of a pipeline. Lifecycle: `listen()` (answers /health and
 * 503 elsewhere), `attach(pipeline)` (serving), `drain(ms)` (readiness and new requests 503, the
 * requests in flight finish or are aborted at the deadline), `close()`.
 */
export class OmniServer {
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  readonly #options: OmniServerOptions;
  readonly #admission: Admission;
  readonly #scopes = new Set<RequestScope>();
  readonly #authorized: ((header: string | undefined) => boolean) | null;
  #pipeline: ServedPipeline | null = null;
  #state: State = 'starting';
  #closing: Promise<void> | null = null;

  constructor(options: OmniServerOptions) {
    this.#options = options;
    this.metrics = options.metrics ?? new ServerMetrics();
    this.#admission = new Admission(options.maxInflight ?? 1024);
    this.#authorized = options.apiKey ? bearerMatcher(options.apiKey) : null;
    const bodyLimit = options.bodyLimitBytes ?? 64 * 1024 * 1024;
    // Typed as fastify's base logger so routes take a plain FastifyInstance.
    const logger: FastifyBaseLogger = options.logger;
    this.app = Fastify({
      loggerInstance: logger,
      logController: new LogController({ disableRequestLogging: true }),
      bodyLimit,
      // Strict validation: ajv's fastify defaults coerce types and strip unknown fields, which
      // would turn "max_tokens": "5" into 5 and drop a misspelt field without a word.
      ajv: {
        customOptions: {
          coerceTypes: false,
          removeAdditional: false,
          useDefaults: false,
          allErrors: false,
          allowUnionTypes: true,
        },
      },
    });
    this.app.setErrorHandler((err: FastifyError, request, reply) => this.#onError(err, request, reply, bodyLimit));
    this.app.setNotFoundHandler((request) => {
      throw new HttpError(
        404,
        'OMNI_HTTP_INVALID_REQUEST',
        `no endpoint ${request.method} ${request.url.split('?')[0]}; endpoints: ${['GET /health', 'GET /health/ready', 'GET /metrics', 'GET /v1/models', ...GENERATION_ROUTES.map((r) => `POST ${r}`)].join(', ')}`,
      );
    });
    this.app.addHook('onRequest', async (request, reply) => this.#admit(request, reply));
    this.#routes();
  }

  /** Listens; resolves with the base URL. A taken port is OMNI_SERVE_LISTEN. */
  async listen(host: string, port: number): Promise<string> {
    try {
      await this.app.listen({ host, port });
    } catch (err) {
      throw new OmniError('OMNI_SERVE_LISTEN', `cannot listen on ${host}:${port}: ${(err as Error).message}`, {
        cause: err,
        hint:
          (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
            ? 'another program uses this port: choose another with --port'
            : 'check --host and --port',
      });
    }
    const addr = this.app.server.address();
    const actualPort = typeof addr === 'object' && addr !== null ? addr.port : port;
    return `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  }

  /** The pipeline is up: generation endpoints serve from now on. */
  attach(pipeline: ServedPipeline): void {
    this.#pipeline = pipeline;
    this.metrics.setSource({
      stageIds: () => pipeline.stages.map((s) => s.stage_id),
      liveReplicas: (id) => pipeline.liveReplicas(id),
    });
    if (this.#state === 'starting') this.#state = 'serving';
  }

  get inflight(): number {
    return this.#admission.inflight;
  }

  /** Readiness and new generation requests answer 503 from now on (the first step of a drain). */
  stopAccepting(): void {
    this.#state = 'draining';
  }

  /**
   * Stops taking generation requests (503, readiness 503) and waits for those in flight. Past
   * `timeoutMs` the rest are aborted in every stage; resolves with how many had to be aborted.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.stopAccepting();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
    const outcome = await Promise.race([this.#admission.idle().then(() => 'idle' as const), deadline]);
    clearTimeout(timer);
    if (outcome === 'idle') return 0;
    const late = [...this.#scopes];
    for (const s of late)
      s.abort(
        'drain',
        new OmniError(
          'OMNI_DRAIN_TIMEOUT',
          `request ${s.requestId} was still running when --drain-timeout (${timeoutMs / 1000} s) ran out; it was aborted in every stage`,
        ),
      );
    await this.#admission.idle();
    return late.length;
  }

  /** Closes the listener and idle connections; safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= this.app.close();
    return this.#closing;
  }

  #context(): GenerationContext {
    return {
      servedModel: this.#options.servedModelName,
      metrics: this.metrics,
      pipeline: () => {
        if (!this.#pipeline)
          throw new HttpError(503, 'OMNI_HTTP_UNAVAILABLE', 'the pipeline is still coming up', {
            headers: { 'retry-after': '5' },
          });
        return this.#pipeline;
      },
      openScope: (request, reply) => {
        const scope = new RequestScope(reply, {
          timeoutMs: this.#options.requestTimeoutMs,
          onEnd: () => {
            this.#scopes.delete(scope);
            this.metrics.requestDuration.observe(
              { endpoint: request.routeOptions.url ?? '' },
              (performance.now() - scope.startedAt) / 1000,
            );
          },
        });
        this.#scopes.add(scope);
        return scope;
      },
    };
  }

  #routes(): void {
    const app = this.app;
    app.get('/health', async () => ({ status: 'ok' }));
    app.get('/health/ready', async (_request, reply) => {
      const r = this.#readiness();
      return reply.code(r.ready ? 200 : 503).send(r.body);
    });
    app.get('/metrics', async (_request, reply) =>
      reply.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics()),
    );
    app.get('/v1/models', async () => ({
      object: 'list',
      data: [
        {
          id: this.#options.servedModelName,
          object: 'model',
          created: Math.floor(Date.now() / 1000),
          owned_by: 'omnistage',
        },
      ],
    }));
    const ctx = this.#context();
    chatRoute(app, ctx);
    completionsRoute(app, ctx);
    imagesRoute(app, ctx);
    speechRoute(app, ctx);
  }

  #readiness(): { ready: boolean; body: Record<string, unknown> } {
    if (this.#state === 'draining') return { ready: false, body: { status: 'draining' } };
    const p = this.#pipeline;
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

  /** Every request: count it, check the key; generation requests: state and --max-inflight. */
  #admit(request: FastifyRequest, reply: FastifyReply): void {
    const endpoint = request.routeOptions.url ?? 'unmatched';
    reply.raw.once('close', () => {
      // 499: the client closed the connection before the answer was complete (nginx's convention).
      this.metrics.httpRequests.inc({
        endpoint,
        status: reply.raw.writableFinished ? String(reply.raw.statusCode) : '499',
      });
    });
    const path = request.url.split('?')[0];
    const open = path === '/health' || (path === '/metrics' && this.#options.metricsPublic === true);
    if (this.#authorized && !open && !this.#authorized(request.headers.authorization)) {
      throw new HttpError(
        401,
        'OMNI_HTTP_UNAUTHORIZED',
        'missing or wrong API key: send the header "Authorization: Bearer <key>" with the key given to --api-key / OMNISTAGE_API_KEY',
        {
          headers: { 'www-authenticate': 'Bearer' },
        },
      );
    }
    if (request.routeOptions.config.generation !== true) return;
    if (this.#state === 'draining') {
      this.metrics.rejected.inc({ reason: 'draining' });
      throw new HttpError(
        503,
        'OMNI_HTTP_UNAVAILABLE',
        'the server is shutting down (draining): send the request to another replica of this service',
      );
    }
    if (this.#state === 'starting') {
      this.metrics.rejected.inc({ reason: 'not_ready' });
      throw new HttpError(
        503,
        'OMNI_HTTP_UNAVAILABLE',
        'the pipeline is still coming up (GET /health/ready says when it serves)',
        { headers: { 'retry-after': '5' } },
      );
    }
    if (!this.#admission.tryEnter()) {
      this.metrics.rejected.inc({ reason: 'overloaded' });
      throw new HttpError(
        429,
        'OMNI_HTTP_OVERLOADED',
        `${this.#admission.max} requests are in flight (--max-inflight); retry after the Retry-After seconds`,
        { headers: { 'retry-after': '1' } },
      );
    }
    this.metrics.inflight.inc();
    reply.raw.once('close', () => {
      this.#admission.leave();
      this.metrics.inflight.dec();
    });
  }

  #onError(err: FastifyError, request: FastifyRequest, reply: FastifyReply, bodyLimit: number): FastifyReply {
    const e = err instanceof HttpError ? err : fromFastifyError(err, bodyLimit);
    if (!e) {
      request.log.error({ err, url: request.url }, 'unexpected error answering a request');
      const internal = new HttpError(500, 'OMNI_INTERNAL', 'internal error (a bug in omnistage; see the server log)');
      return reply.code(500).send(internal.body);
    }
    if (e.status >= 500) request.log.warn({ status: e.status, code: e.code, url: request.url }, e.message);
    return reply.code(e.status).headers(e.headers).send(e.body);
  }
}
