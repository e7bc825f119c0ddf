import { randomUUID } from 'node:crypto';
import { OmniError, isOmniError } from '@omnistage/core';
import type { FastifyReply } from 'fastify';
import { HttpError, fromPipelineError } from './http-error.js';

/** Why a request's signal was aborted by the server (a client that left needs no answer). */
type AbortCause = 'client' | 'timeout' | 'drain';

/**
 * One generation request's lifetime: its id, the signal every stage of the pipeline listens on,
 * and the reasons to abort it — the client disconnecting, `--request-timeout`, or the drain
 * deadline. `end()` must be called when the answer is complete.
 */
export class RequestScope {
  readonly requestId = randomUUID();
  readonly startedAt = performance.now();
  readonly #controller = new AbortController();
  #cause: AbortCause | null = null;
  #timer: NodeJS.Timeout | undefined;
  #onEnd: () => void;
  #firstChunk = false;

  constructor(reply: FastifyReply, options: { timeoutMs: number | undefined; onEnd: () => void }) {
    this.#onEnd = options.onEnd;
    // 'close' without a finished response: the client went away mid-request.
    reply.raw.once('close', () => {
      if (!reply.raw.writableEnded)
        this.abort('client', new OmniError('OMNI_CANCELLED', `request ${this.requestId}: the client disconnected`));
      this.end();
    });
    if (options.timeoutMs !== undefined) {
      const ms = options.timeoutMs;
      this.#timer = setTimeout(
        () =>
          this.abort(
            'timeout',
            new OmniError(
              'OMNI_REQUEST_TIMEOUT',
              `request ${this.requestId} ran past --request-timeout (${ms / 1000} s) and was aborted in every stage`,
            ),
          ),
        ms,
      );
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  abort(cause: AbortCause, reason: OmniError): void {
    if (this.#controller.signal.aborted) return;
    this.#cause = cause;
    this.#controller.abort(reason);
  }

  /** True the first time it is called (time to first chunk is measured once). */
  firstChunk(): boolean {
    if (this.#firstChunk) return false;
    this.#firstChunk = true;
    return true;
  }

  /** The answer for a failure of this request: 504 after the timeout, 503 after the drain deadline. */
  errorFor(err: unknown): HttpError {
    // The router names the stage and replica the request waited on in its own timeout error.
    if (this.#cause === 'timeout')
      return new HttpError(
        504,
        'OMNI_REQUEST_TIMEOUT',
        (isOmniError(err) && err.code === 'OMNI_REQUEST_TIMEOUT' ? err : (this.signal.reason as Error)).message,
      );
    if (this.#cause === 'drain')
      return new HttpError(503, 'OMNI_HTTP_UNAVAILABLE', (this.signal.reason as Error).message);
    if (isOmniError(err) && err.code === 'OMNI_REQUEST_TIMEOUT')
      return new HttpError(504, 'OMNI_REQUEST_TIMEOUT', err.message);
    return fromPipelineError(err);
  }

  end(): void {
    clearTimeout(this.#timer);
    const onEnd = this.#onEnd;
    this.#onEnd = () => {};
    onEnd();
  }
}
