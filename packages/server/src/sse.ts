import type { FastifyReply } from 'fastify';
import type { HttpError } from './http-error.js';

/** A Server-Sent Events answer as OpenAI streams it: `data: <json>` events, then `data: [DONE]`. */
export interface SseStream {
  send(event: unknown): void;
  /** An error after the stream began: OpenAI's error object as an event (clients raise it), then the end. */
  fail(err: HttpError): void;
  end(): void;
}

export function openSse(reply: FastifyReply): SseStream {
  // The route writes the socket itself from here on; fastify's reply is not used again.
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  const write = (text: string): void => {
    if (!res.destroyed && !res.writableEnded) res.write(text);
  };
  return {
    send: (event) => write(`data: ${JSON.stringify(event)}\n\n`),
    fail: (err) => {
      write(`data: ${JSON.stringify(err.body)}\n\n`);
      write('data: [DONE]\n\n');
      if (!res.writableEnded) res.end();
    },
    end: () => {
      write('data: [DONE]\n\n');
      if (!res.writableEnded) res.end();
    },
  };
}
