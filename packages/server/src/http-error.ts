import { isOmniError, type OmniError } from '@omnistage/core';

/** OpenAI's error `type` values the server uses. */
export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable'
  | 'timeout';

/** The code of an answer, from core's catalogue (`OMNI_*`). */
export type HttpErrorCode =
  | 'OMNI_HTTP_INVALID_REQUEST'
  | 'OMNI_HTTP_UNAUTHORIZED'
  | 'OMNI_HTTP_OVERLOADED'
  | 'OMNI_HTTP_UNAVAILABLE'
  | 'OMNI_REQUEST_TIMEOUT'
  | 'OMNI_REQUEST_FAILED'
  | 'OMNI_CANCELLED'
  | 'OMNI_INTERNAL';

/** The body of every error answer: OpenAI's error object. */
export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: HttpErrorCode };
}

/** An error the server answers with: status, OpenAI error object, optional headers. */
export class HttpError extends Error {
  readonly status: number;
  readonly type: OpenAIErrorType;
  readonly code: HttpErrorCode;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: HttpErrorCode,
    message: string,
    options: { param?: string; type?: OpenAIErrorType; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.param = options.param ?? null;
    this.type = options.type ?? defaultType(status);
    this.headers = options.headers ?? {};
  }

  get body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function defaultType(status: number): OpenAIErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 503) return 'service_unavailable';
  if (status === 504) return 'timeout';
  return status < 500 ? 'invalid_request_error' : 'server_error';
}

/** A 400 about one field of the body (`param` as OpenAI names it: `messages[0].content`). */
export function badField(param: string, message: string): HttpError {
  return new HttpError(400, 'OMNI_HTTP_INVALID_REQUEST', message, { param });
}

/**
 * What a failed pipeline request answers: a replica that died or an engine that failed the
 * request is 502 (the upstream failed), a stage without a live replica or a stopping pipeline 503,
 * anything else 500. The message names the stage and replica (core's errors carry them).
 */
export function fromPipelineError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (!isOmniError(err))
    return new HttpError(500, 'OMNI_INTERNAL', 'internal error (a bug in omnistage; see the server log)');
  const e: OmniError = err;
  const hint = e.hint ? ` (${e.hint})` : '';
  if (e.code === 'OMNI_CANCELLED') return new HttpError(503, 'OMNI_CANCELLED', `${e.message}${hint}`);
  if (e.code === 'OMNI_REQUEST_FAILED' || e.code === 'OMNI_WORKER_EXITED') {
    const hasReplica = e.context.replica_id !== undefined;
    return new HttpError(hasReplica ? 502 : 503, 'OMNI_REQUEST_FAILED', `${e.message}${hint}`);
  }
  return new HttpError(500, 'OMNI_INTERNAL', `${e.code}: ${e.message}`);
}
