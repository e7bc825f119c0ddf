import net from 'node:net';
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
import type { ServingState } from './app-decorations.js';
import { bearerAuthHook } from './auth.js';
import { corsHook } from './cors.js';
import { fromFastifyError } from './fastify-errors.js';
import { HttpError } from './http-error.js';
import { ServerMetrics } from './metrics.js';
import { echoRequestId, requestIdOf } from './request-id.js';
import { RequestScopes } from './request-scopes.js';
import { healthRoutes, readinessRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { v1Routes } from './routes/v1.js';
import type { ServedPipeline } from './served-pipeline.js';

/** How long a closing server waits for its keep-alive connections to go by themselves. */
const CLOSE_LINGER_MS = 2000;
/** A listener that took no connection for this long after a drain is closed. */
const CLOSE_QUIET_MS = 500;

/** Resolves when `emitter` has not emitted `event` for `quietMs`, or at `until` (epoch ms). */
function quiet(emitter: NodeJS.EventEmitter, event: string, quietMs: number, until: number): Promise<void> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout;
    const done = (): void => {
      clearTimeout(timer);
      emitter.off(event, arm);
      resolve();
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(done, Math.max(0, Math.min(quietMs, until - Date.now())));
    };
    emitter.on(event, arm);
    arm();
  });
}

/** Waits for `p`, at most until `until` (epoch ms). */
async function settledBy(p: Promise<void>, until: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p,
    new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, until - Date.now())))),
  ]);
  clearTimeout(timer);
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
  /** Origins browsers may call from (`*`: any); default none, CORS off (`--allowed-origins`). */
  allowedOrigins?: readonly string[];
}

/**
 * The OpenAI-compatible HTTP front door of a pipeline. Lifecycle: `listen()` (answers /health and
 * 503 elsewhere), `attach(pipeline)` (serving), `drain(ms)` (readiness and new requests 503, the
 * requests in flight finish or are aborted at the deadline), `close()`.
 *
 * The routes are fastify plugins reading the instance's decorations (`pipeline`, `metrics`,
 * `servedModel`, `servingState`, `requestScopes`); the API key is an `onRequest` hook of the scope
 * it guards, admission one of the generation routes' scope.
 */
export class OmniServer {
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  readonly #admission: Admission;
  readonly #scopes: RequestScopes;
  /** "METHOD /path" of every route, in registration order, for the 404 message. */
  readonly #endpoints: string[] = [];
  /** The methods of each path, for 405's `Allow`. */
  readonly #methods = new Map<string, string[]>();
  #pipeline: ServedPipeline | null = null;
  #state: ServingState = 'starting';
  #closing: Promise<void> | null = null;

  constructor(options: OmniServerOptions) {
    this.metrics = options.metrics ?? new ServerMetrics();
    this.#admission = new Admission(options.maxInflight ?? 1024);
    this.#scopes = new RequestScopes(this.metrics, options.requestTimeoutMs);
    const bodyLimit = options.bodyLimitBytes ?? 64 * 1024 * 1024;
    // Typed as fastify's base logger so routes take a plain FastifyInstance.
    const logger: FastifyBaseLogger = options.logger;
    this.app = Fastify({
      loggerInstance: logger,
      logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
      bodyLimit,
      // One id per request, the client's x-request-id when given: fastify logs it as request_id,
      // and the pipeline, its events and the error messages use the same (RequestScope).
      genReqId: requestIdOf,
      // Strict validation: ajv's fastify defaults coerce types and strip unknown fields, which
      // would turn "max_tokens": "5" into 5 and drop a misspelt field without a word.
      ajv: {
        customOptions: {
          coerceTypes: false,
          removeAdditional: false,
          useDefaults: false,
          allErrors: false,
          allowUnionTypes: true,
          // Issues carry their schema, so an unknown field's message can suggest the nearest known one.
          verbose: true,
        },
      },
    });
    this.#decorate(options.servedModelName);
    this.app.setErrorHandler((err: FastifyError, request, reply) => this.#onError(err, request, reply, bodyLimit));
    this.app.decorateRequest('failedAfterHeaders', null);
    this.app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) {
        this.#methods.set(route.url, [...(this.#methods.get(route.url) ?? []), method]);
        if (method !== 'HEAD') this.#endpoints.push(`${method} ${route.url}`);
      }
    });
    this.app.addHook('onRequest', async (request, reply) => this.#count(request, reply));
    this.app.addHook('onRequest', echoRequestId);
    if (options.allowedOrigins?.length) this.app.addHook('onRequest', corsHook(options.allowedOrigins));
    // While draining, every answer (those of requests admitted before too) asks keep-alive clients
    // to reconnect, to another instance: no socket is left idle for the listener's close to reset.
    this.app.addHook('onSend', async (_request, reply) => {
      if (this.#state === 'draining') void reply.header('connection', 'close');
    });
    this.#routes(options);
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
    const late = this.#scopes.abortAll(
      (s) =>
        new OmniError(
          'OMNI_DRAIN_TIMEOUT',
          `request ${s.requestId} was still running when --drain-timeout (${timeoutMs / 1000} s) ran out; it was aborted in every stage`,
        ),
    );
    await this.#admission.idle();
    return late;
  }

  /**
   * Closes the listener and the connections; safe to call more than once. After a drain, the
   * listener stops taking connections first while the open ones stay: each gets its next request
   * answered (503, `Connection: close`) and closes, so a keep-alive client is never reset in the
   * middle of sending one. Connections still open after {@link CLOSE_LINGER_MS} (clients that send
   * nothing more) are closed then.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const server = this.app.server;
    if (this.#state === 'draining' && server.listening) {
      const until = Date.now() + CLOSE_LINGER_MS;
      // Clients told 503 + close reconnect (to be told again, or to go): while they still arrive, a
      // closed listener would reset those waiting in its backlog. Close once connections stop coming.
      await quiet(server, 'connection', CLOSE_QUIET_MS, until);
      // net.Server's own close: http.Server.close would also close the idle keep-alive sockets.
      const gone = new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve()));
      let closed = false;
      await settledBy(
        gone.then(() => void (closed = true)),
        until,
      );
      // Connections still open at the deadline (clients that send nothing more) are closed now.
      if (!closed) {
        server.closeAllConnections();
        await gone;
      }
      // The server is closed and has emitted 'close': fastify's own close would wait for a second
      // 'close' that never comes, so closing it again is done at once.
      server.close = ((cb?: (err?: Error) => void) => (cb?.(), server)) as typeof server.close;
    }
    await this.app.close();
  }

  #decorate(servedModel: string): void {
    const app = this.app;
    app.decorate('pipeline', { getter: () => this.#pipeline });
    app.decorate('servingState', { getter: () => this.#state });
    app.decorate('metrics', this.metrics);
    app.decorate('servedModel', servedModel);
    app.decorate('requestScopes', this.#scopes);
  }

  #routes(options: OmniServerOptions): void {
    const app = this.app;
    const auth = options.apiKey ? bearerAuthHook(options.apiKey) : null;
    // Probes and load balancers carry no key: liveness and readiness are open.
    void app.register(healthRoutes);
    void app.register(readinessRoutes);
    if (options.metricsPublic) void app.register(metricsRoutes);
    void app.register(async (guarded) => {
      if (auth) guarded.addHook('onRequest', auth);
      if (!options.metricsPublic) await guarded.register(metricsRoutes);
      await guarded.register(v1Routes, { prefix: '/v1', admission: this.#admission });
    });
    // Unknown paths need the key too: without it they would reveal nothing but the route list.
    app.setNotFoundHandler(auth ? { preHandler: auth } : {}, async (request) => {
      const path = request.url.split('?')[0]!;
      const allowed =
        this.#methods.get(path) ?? this.#methods.get(path.replace(/^\/v1\/models\/[^/]+$/, '/v1/models/:id'));
      if (allowed) {
        throw new HttpError(
          405,
          'OMNI_HTTP_INVALID_REQUEST',
          `${path} does not take ${request.method}; it takes ${allowed.join(', ')}`,
          {
            headers: { allow: allowed.join(', ') },
          },
        );
      }
      throw new HttpError(
        404,
        'OMNI_HTTP_INVALID_REQUEST',
        `no endpoint ${request.method} ${path}; endpoints: ${this.#endpoints.join(', ')}`,
      );
    });
  }

  /** Counts every answer by route and status; 499 when the client closed the connection first (nginx's convention). */
  #count(request: FastifyRequest, reply: FastifyReply): void {
    const endpoint = request.routeOptions.url ?? 'unmatched';
    reply.raw.once('close', () => {
      const status = !reply.raw.writableEnded
        ? '499'
        : request.failedAfterHeaders !== null
          ? 'stream_failed'
          : String(reply.raw.statusCode);
      this.metrics.httpRequests.inc({ endpoint, status });
    });
  }

  #onError(err: FastifyError, request: FastifyRequest, reply: FastifyReply, bodyLimit: number): FastifyReply {
    const e = err instanceof HttpError ? err : fromFastifyError(err, bodyLimit);
    if (!e) {
      request.log.error({ err, url: request.url }, 'unexpected error answering a request');
      const internal = new HttpError(500, 'OMNI_INTERNAL', 'internal error (a bug in omnistage; see the server log)');
      return reply.code(500).send(internal.body);
    }
    // A client that left is not the server's failure: info, as the 499 in the metrics.
    if (e.status === 499) request.log.info({ status: 499, code: e.code, url: request.url }, e.message);
    else if (e.status >= 500) request.log.warn({ status: e.status, code: e.code, url: request.url }, e.message);
    return reply.code(e.status).headers(e.headers).send(e.body);
  }
}
