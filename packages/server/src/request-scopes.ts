import type { OmniError } from '@omnistage/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerMetrics } from './metrics.js';
import { HttpError } from './http-error.js';
import { RequestScope } from './request-scope.js';

/** The generation requests running now: opened by the routes, aborted together by the drain. */
export class RequestScopes {
  readonly #open = new Set<RequestScope>();
  readonly #ids = new Set<string>();
  readonly #metrics: ServerMetrics;
  readonly #timeoutMs: number | undefined;

  constructor(metrics: ServerMetrics, timeoutMs: number | undefined) {
    this.#metrics = metrics;
    this.#timeoutMs = timeoutMs;
  }

  /** Starts a request's lifetime (abort on disconnect, `--request-timeout`, drain). */
  open(request: FastifyRequest, reply: FastifyReply): RequestScope {
    // The id names the request in the pipeline (payloads, events): two at once would mix them up.
    if (this.#ids.has(request.id)) {
      throw new HttpError(
        409,
        'OMNI_HTTP_INVALID_REQUEST',
        `a request with x-request-id "${request.id}" is already running; give each request its own id`,
        { param: 'x-request-id' },
      );
    }
    const scope = new RequestScope(reply, {
      timeoutMs: this.#timeoutMs,
      onEnd: () => {
        this.#open.delete(scope);
        this.#ids.delete(scope.requestId);
        this.#metrics.requestDuration.observe(
          { endpoint: request.routeOptions.url ?? '' },
          (performance.now() - scope.startedAt) / 1000,
        );
      },
    });
    this.#open.add(scope);
    this.#ids.add(scope.requestId);
    return scope;
  }

  /** Aborts every open request with the reason `reasonFor` gives it; returns how many there were. */
  abortAll(reasonFor: (scope: RequestScope) => OmniError): number {
    const late = [...this.#open];
    for (const s of late) s.abort('drain', reasonFor(s));
    return late.length;
  }
}
