import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitForHttpReady } from '../../src/control/http-readiness.js';

const servers: Server[] = [];

async function serve(handler: (path: string) => number, port = 0): Promise<number> {
  const server = createServer((req, res) => {
    res.statusCode = handler(req.url ?? '');
    res.end('{}');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

describe('waitForHttpReady', () => {
  it('polls until the endpoint answers 200', async () => {
    let calls = 0;
    const paths: string[] = [];
    const port = await serve((path) => {
      paths.push(path);
      return ++calls < 3 ? 503 : 200;
    });
    await waitForHttpReady(`http://127.0.0.1:${port}/v1/models`, { intervalMs: 20 });
    expect(calls).toBe(3);
    expect(paths.every((p) => p === '/v1/models')).toBe(true);
  });

  it('treats connection refused as not ready yet', async () => {
    const port = await serve(() => 200);
    const server = servers.pop()!;
    await new Promise((resolve) => server.close(resolve)); // free the port; nothing listens now
    const waiting = waitForHttpReady(`http://127.0.0.1:${port}/v1/models`, {
      intervalMs: 20,
      deadline: Date.now() + 5_000,
    });
    setTimeout(() => void serve(() => 200, port), 150);
    await expect(waiting).resolves.toBeUndefined();
  });

  it('fails with OMNI_ATTACH_TIMEOUT at the deadline, and OMNI_CANCELLED on abort', async () => {
    const port = await serve(() => 503);
    const err = await waitForHttpReady(`http://127.0.0.1:${port}/v1/models`, {
      intervalMs: 20,
      deadline: Date.now() + 150,
      errorContext: { stage_id: 1, replica_id: 0 },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OMNI_ATTACH_TIMEOUT', context: { stage_id: 1, phase: 'attach' } });
    expect((err as Error).message).toMatch(/HTTP 503|no answer/);
    const controller = new AbortController();
    const waiting = waitForHttpReady(`http://127.0.0.1:${port}/v1/models`, {
      intervalMs: 20,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 100);
    await expect(waiting).rejects.toMatchObject({ code: 'OMNI_CANCELLED' });
  });
});
