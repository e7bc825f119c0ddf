import type { OmniError } from '@omnistage/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerMetrics } from './metrics.js';
import { RequestScope } from './request-scope.js';

/** The generation requests running now: opened by the routes, aborted together by the drain. */
export class RequestScopes {
  readonly #open = new Set<RequestScope>();
  readonly #metrics: ServerMetrics;
  readonly #timeoutMs: number | undefined;

  constructor(metrics: ServerMetrics, timeoutMs: number | undefined) {
    this.#metrics = metrics;
    this.#timeoutMs = timeoutMs;
  }

  /** Starts a request's lifetime (abort on disconnect, `--request-timeout`, drain). */
  open(request: FastifyRequest, reply: FastifyReply): RequestScope {
    const scope = new RequestScope(reply, {
      timeoutMs: this.#timeoutMs,
      onEnd: () => {
        this.#open.delete(scope);
        this.#metrics.requestDuration.observe(
          { endpoint: request.routeOptions.url ?? '' },
          (performance.now() - scope.startedAt) / 1000,
        );
      },
    });
    this.#open.add(scope);
    return scope;
  }

  /** Aborts every open request with the reason `reasonFor` gives it; returns how many there were. */
  abortAll(reasonFor: (scope: RequestScope) => OmniError): number {
    const late = [...this.#open];
    for (const s of late) s.abort('drain', reasonFor(s));
    return late.length;
  }
}
