import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './http-error.js';

/** What a client's `x-request-id` may be: it ends up in logs, events and file names of payloads. */
const VALID_ID = /^[\w.:@-]{1,128}$/;

/** Fastify's `genReqId`: the client's `x-request-id` when it sent one, else a fresh UUID. */
export function requestIdOf(request: { headers: Record<string, string | string[] | undefined> }): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && given !== '' ? given : randomUUID();
}

/** The `onRequest` hook that refuses an unusable `x-request-id` and echoes the id on every answer. */
export async function echoRequestId(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!VALID_ID.test(request.id)) {
    throw new HttpError(
      400,
      'OMNI_HTTP_INVALID_REQUEST',
      'the x-request-id header must be 1 to 128 letters, digits or . _ : @ - (or absent: the server then makes one)',
      { param: 'x-request-id' },
    );
  }
  void reply.header('x-request-id', request.id);
}
