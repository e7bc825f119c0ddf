/**
 * Drain under load over real sockets: 64 keep-alive clients in a closed loop while the server
 * drains and closes; each goes elsewhere once it is told 503 (as a load balancer does). Every
 * answer during the drain says `Connection: close` and the listener closes without destroying
 * keep-alive sockets a request may be travelling on, so no client sees a reset.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { FakePipeline } from './fake-pipeline.js';
import { fakeServer } from './inject-helpers.js';

const BODY = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });

interface Tally {
  ok: number;
  unavailable: number;
  closeHeaders: number;
  errors: Map<string, number>;
}

function request(agent: http.Agent, port: number, tally: Tally): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/chat/completions',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) tally.ok++;
          else if (res.statusCode === 503) {
            tally.unavailable++;
            if (res.headers['connection'] === 'close') tally.closeHeaders++;
          }
          resolve(res.statusCode === 200);
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      tally.errors.set(err.code ?? err.message, (tally.errors.get(err.code ?? err.message) ?? 0) + 1);
      resolve(false);
    });
    req.end(BODY);
  });
}

describe('drain with 64 keep-alive clients', () => {
  it('no client sees a reset: every one is told 503 with Connection: close and goes', async () => {
    const server = fakeServer(new FakePipeline());
    const url = new URL(await server.listen('127.0.0.1', 0));
    const port = Number(url.port);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const tally: Tally = { ok: 0, unavailable: 0, closeHeaders: 0, errors: new Map() };
    let started = 0;
    let wake: () => void = () => {};
    const warm = new Promise<void>((resolve) => (wake = resolve));
    const clients = Array.from({ length: 64 }, async () => {
      // Each client loops until it is told the server drains (or fails).
      while (await request(agent, port, tally)) if (++started === 640) wake();
    });
    await warm;
    expect(await server.drain(10_000)).toBe(0);
    await server.close();
    await Promise.all(clients);
    agent.destroy();
    expect(tally.ok).toBeGreaterThan(0);
    expect(Object.fromEntries(tally.errors)).toEqual({});
    expect(tally.unavailable).toBe(64);
    expect(tally.closeHeaders).toBe(64);
  }, 60_000);
});
