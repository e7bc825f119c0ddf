/** Builds an OmniServer over a {@link FakePipeline} for `app.inject()` tests, and reads SSE bodies. */
import { pino } from 'pino';
import { afterEach, expect } from 'vitest';
import { OmniServer, type OmniServerOptions } from '../src/index.js';
import { FakePipeline } from './fake-pipeline.js';

const servers: OmniServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** A server (closed after the test) with `pipeline` attached unless it is null. */
export function fakeServer(
  pipeline: FakePipeline | null = new FakePipeline(),
  options: Partial<OmniServerOptions> = {},
): OmniServer {
  const server = new OmniServer({ logger: pino({ level: 'silent' }), servedModelName: 'omni', ...options });
  servers.push(server);
  if (pipeline) server.attach(pipeline);
  return server;
}

/** The `data:` payloads of a Server-Sent Events body, `[DONE]` included, JSON parsed where it is JSON. */
export function sseData(body: string): unknown[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body
    .split('\n\n')
    .filter((e) => e !== '')
    .map((e) => {
      expect(e.startsWith('data: ')).toBe(true);
      const data = e.slice(6);
      return data === '[DONE]' ? data : (JSON.parse(data) as unknown);
    });
}
