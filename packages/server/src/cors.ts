import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * CORS for browser apps, off unless `--allowed-origins` names origins (or `*`): a request from an
 * allowed `Origin` gets `Access-Control-Allow-Origin` (and may read `x-request-id`); a preflight
 * (`OPTIONS` with `Access-Control-Request-Method`) from one is answered 204 before the API key is
 * checked, as browsers send preflights without credentials. Other origins get no CORS headers, so
 * the browser refuses the answer to the page.
 */
export function corsHook(
  allowedOrigins: readonly string[],
): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const any = allowedOrigins.includes('*');
  return async (request, reply) => {
    const origin = request.headers.origin;
    if (origin === undefined || !(any || allowedOrigins.includes(origin))) return;
    void reply.header('access-control-allow-origin', any ? '*' : origin);
    if (!any) void reply.header('vary', 'origin');
    void reply.header('access-control-expose-headers', 'x-request-id');
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      await reply
        .code(204)
        .header('access-control-allow-methods', 'GET, POST, OPTIONS')
        .header(
          'access-control-allow-headers',
          request.headers['access-control-request-headers'] ?? 'authorization, content-type, x-request-id',
        )
        .header('access-control-max-age', '600')
        .send();
    }
  };
}
