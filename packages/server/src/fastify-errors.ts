import { isOmniError, suggestions } from '@omnistage/core';
import type { FastifyError } from 'fastify';
import { HttpError, fromPipelineError, httpError } from './http-error.js';

interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  /** The schema of the object at fault (ajv's `verbose` option). */
  parentSchema?: { properties?: Record<string, unknown> };
}

/** `/messages/0/role` → `messages[0].role` (how OpenAI names a field in `error.param`). */
function paramOf(instancePath: string, child?: unknown): string {
  const parts = instancePath.split('/').slice(1);
  if (typeof child === 'string') parts.push(child);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function fromValidation(issue: AjvIssue): HttpError {
  if (issue.keyword === 'additionalProperties') {
    const name = String(issue.params['additionalProperty']);
    const field = paramOf(issue.instancePath, name);
    const [near] = suggestions(name, Object.keys(issue.parentSchema?.properties ?? {}), 1);
    const fix = near === undefined ? 'remove it' : `did you mean "${near}"?`;
    return httpError(
      'OMNI_HTTP_INVALID_REQUEST',
      `unknown field "${field}": ${fix} (it is not a field of OpenAI's API for this endpoint nor an omnistage extension; docs/serving.md lists them)`,
      { param: field },
    );
  }
  if (issue.keyword === 'required') {
    const field = paramOf(issue.instancePath, issue.params['missingProperty']);
    return httpError('OMNI_HTTP_INVALID_REQUEST', `missing required field "${field}"`, { param: field });
  }
  const field = paramOf(issue.instancePath) || 'body';
  const allowed = Array.isArray(issue.params['allowedValues']) ? `: ${issue.params['allowedValues'].join(', ')}` : '';
  return httpError('OMNI_HTTP_INVALID_REQUEST', `${field} ${issue.message ?? 'is not valid'}${allowed}`, {
    param: field,
  });
}

const STATUS_BY_CODE: Record<string, number> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 413,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 415,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 400,
};

/**
 * What fastify's own errors answer: a schema violation names the field, a body that is not JSON
 * says so, size and media-type errors keep their status. Never a 500 for a client's mistake. An
 * OmniError a route let through answers with its own code and the catalogue's status.
 */
export function fromFastifyError(err: FastifyError, bodyLimit: number): HttpError | null {
  if (isOmniError(err)) return fromPipelineError(err);
  if (Array.isArray(err.validation) && err.validation.length > 0) return fromValidation(err.validation[0] as AjvIssue);
  if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return httpError('OMNI_HTTP_INVALID_REQUEST', `the body is not valid JSON (${err.message})`, {
      param: 'body',
    });
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new HttpError(
      413,
      'OMNI_HTTP_INVALID_REQUEST',
      `the body is larger than ${bodyLimit} bytes (omnistage serve --max-body-mb raises the limit)`,
      { param: 'body' },
    );
  }
  const status = STATUS_BY_CODE[err.code] ?? err.statusCode;
  if (status !== undefined && status >= 400 && status < 500)
    return new HttpError(status, 'OMNI_HTTP_INVALID_REQUEST', err.message);
  return null;
}
