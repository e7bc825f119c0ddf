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
  /** The request's one id: the client's `x-request-id` or a generated one (logs, events, error messages). */
  readonly requestId: string;
  readonly startedAt = performance.now();
  readonly #controller = new AbortController();
  #cause: AbortCause | null = null;
  #timer: NodeJS.Timeout | undefined;
  #onEnd: () => void;
  #firstChunk = false;

  constructor(reply: FastifyReply, options: { timeoutMs: number | undefined; onEnd: () => void }) {
    this.requestId = reply.request.id;
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
    // Nobody reads it; the status says so in the log and the metrics (nginx's 499).
    if (this.#cause === 'client') return new HttpError(499, 'OMNI_CANCELLED', (this.signal.reason as Error).message);
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
