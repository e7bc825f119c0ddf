import type { FastifyReply } from 'fastify';
import type { HttpError } from './http-error.js';

/**
 * A Server-Sent Events answer as OpenAI streams it: `data: <json>` events, then `data: [DONE]`
 * (Chat Completions, Completions), or named events `event: <type>` (Responses).
 */
export interface SseStream {
  send(event: unknown): void;
  /** A named event (the Responses API's `type`), its data carrying the type too. */
  sendNamed(type: string, event: Record<string, unknown>): void;
  /**
   * An error after the stream began: OpenAI's error object as an event (clients raise it), then
   * the end. The request is counted apart from those that succeeded (its status was already 200).
   */
  fail(err: HttpError): void;
  end(): void;
}

export function openSse(reply: FastifyReply, options: { done?: boolean } = {}): SseStream {
  const done = options.done ?? true;
  // The route writes the socket itself from here on; fastify's reply is not used again.
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
  });
  const write = (text: string): void => {
    if (!res.destroyed && !res.writableEnded) res.write(text);
  };
  const end = (): void => {
    if (done) write('data: [DONE]\n\n');
    if (!res.writableEnded) res.end();
  };
  return {
    send: (event) => write(`data: ${JSON.stringify(event)}\n\n`),
    sendNamed: (type, event) => write(`event: ${type}\ndata: ${JSON.stringify({ type, ...event })}\n\n`),
    fail: (err) => {
      reply.request.failedAfterHeaders = err.code;
      reply.server.metrics.streamFailures.inc({ endpoint: reply.request.routeOptions.url ?? '', code: err.code });
      write(`data: ${JSON.stringify(err.body)}\n\n`);
      end();
    },
    end,
  };
}
