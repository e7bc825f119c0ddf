import { ERROR_CATALOGUE, isOmniError, toOmniError, type ErrorCode } from '@omnistage/core';

/** OpenAI's error `type` values the server uses. */
export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable'
  | 'timeout';

/** The code of an answer: any code of core's catalogue (`OMNI_*`), so a failure keeps its own. */
export type HttpErrorCode = ErrorCode;

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

/** The status core's catalogue gives `code`; 500 for a code this copy of core does not know. */
export function statusOf(code: string): number {
  return (ERROR_CATALOGUE as Partial<Record<string, { httpStatus: number }>>)[code]?.httpStatus ?? 500;
}

/** An answer with the status the catalogue gives `code` (docs/errors.md lists them). */
export function httpError(
  code: ErrorCode,
  message: string,
  options: { param?: string; type?: OpenAIErrorType; headers?: Record<string, string> } = {},
): HttpError {
  return new HttpError(statusOf(code), code, message, options);
}

/** A 400 about one field of the body (`param` as OpenAI names it: `messages[0].content`). */
export function badField(param: string, message: string): HttpError {
  return httpError('OMNI_HTTP_INVALID_REQUEST', message, { param });
}

const INTERNAL_MESSAGE = 'internal error (a bug in omnistage; see the server log)';

/**
 * What a failed pipeline request answers: its own code, with the status the catalogue gives it (a
 * replica or engine that failed is 502, a stage without a live replica or a stopping pipeline 503,
 * a plugin's fault 500 naming the plugin and hook), and its message and hint, which name the stage
 * and replica. A host fault (ENOSPC, EMFILE, ...) is OMNI_ENVIRONMENT; anything else thrown that
 * is not an OmniError is a bug, answered without its text.
 */
export function fromPipelineError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = toOmniError(err);
  if (!isOmniError(err) && e.code === 'OMNI_INTERNAL') return new HttpError(500, 'OMNI_INTERNAL', INTERNAL_MESSAGE);
  const hint = e.hint ? ` (${e.hint})` : '';
  return new HttpError(statusOf(e.code), e.code, `${e.message}${hint}`);
}
