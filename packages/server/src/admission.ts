import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './http-error.js';

/**
 * Bounds the generation requests in flight (`--max-inflight`): a request over the bound is
 * refused at once (429), never queued, and drain waits on the count reaching zero.
 */
export class Admission {
  readonly max: number;
  #inflight = 0;
  #idle: (() => void)[] = [];

  constructor(max: number) {
    this.max = max;
  }

  get inflight(): number {
    return this.#inflight;
  }

  /** Counts a request in; false when the bound is reached. */
  tryEnter(): boolean {
    if (this.#inflight >= this.max) return false;
    this.#inflight++;
    return true;
  }

  leave(): void {
    this.#inflight--;
    if (this.#inflight === 0) for (const wake of this.#idle.splice(0)) wake();
  }

  /** Resolves when no request is in flight. */
  idle(): Promise<void> {
    return this.#inflight === 0 ? Promise.resolve() : new Promise((resolve) => this.#idle.push(resolve));
  }
}

/**
 * The `onRequest` hook of the generation routes: 503 while the pipeline comes up or the server
 * drains, 429 past `--max-inflight`; an admitted request counts until its connection closes.
 */
export function admissionHook(admission: Admission): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (request, reply) => {
    const { metrics, servingState } = request.server;
    if (servingState === 'draining') {
      metrics.rejected.inc({ reason: 'draining' });
      throw new HttpError(
        503,
        'OMNI_HTTP_UNAVAILABLE',
        'the server is shutting down (draining): send the request to another replica of this service',
        { headers: { 'retry-after': '5', connection: 'close' } },
      );
    }
    if (servingState === 'starting') {
      metrics.rejected.inc({ reason: 'not_ready' });
      throw new HttpError(
        503,
        'OMNI_HTTP_UNAVAILABLE',
        'the pipeline is still coming up (GET /health/ready says when it serves)',
        { headers: { 'retry-after': '5' } },
      );
    }
    if (!admission.tryEnter()) {
      metrics.rejected.inc({ reason: 'overloaded' });
      throw new HttpError(
        429,
        'OMNI_HTTP_OVERLOADED',
        `${admission.max} requests are in flight (--max-inflight); retry after the Retry-After seconds`,
        { headers: { 'retry-after': '1' } },
      );
    }
    metrics.inflight.inc();
    reply.raw.once('close', () => {
      admission.leave();
      metrics.inflight.dec();
    });
  };
}
