import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HttpError } from './http-error.js';

/**
 * Checks `Authorization: Bearer <key>` in constant time: both sides are hashed first, so neither
 * the key's content nor its length leaks through timing.
 */
export function bearerMatcher(apiKey: string): (authorization: string | undefined) => boolean {
  const want = createHash('sha256').update(apiKey).digest();
  return (authorization) => {
    const m = /^Bearer (.+)$/i.exec(authorization ?? '');
    const got = createHash('sha256')
      .update(m?.[1] ?? '')
      .digest();
    return timingSafeEqual(want, got) && m !== null;
  };
}

/** True for addresses only this host can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/**
 * The `onRequest` hook of the routes that need the key: 401 (`WWW-Authenticate: Bearer`) for a
 * missing or wrong `Authorization: Bearer <key>`. Registered only in the scopes it guards.
 */
export function bearerAuthHook(apiKey: string): (request: FastifyRequest) => Promise<void> {
  const authorized = bearerMatcher(apiKey);
  return async (request) => {
    if (!authorized(request.headers.authorization)) {
      throw new HttpError(
        401,
        'OMNI_HTTP_UNAUTHORIZED',
        'missing or wrong API key: send the header "Authorization: Bearer <key>" with the key given to --api-key / OMNISTAGE_API_KEY',
        { headers: { 'www-authenticate': 'Bearer' } },
      );
    }
  };
}
