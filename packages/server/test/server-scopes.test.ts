/**
 * The server's scopes through `app.inject()`: which routes the API key guards, readiness, the
 * generation routes' admission (starting, --max-inflight, draining), the 404 list and the metrics.
 */
import { describe, expect, it } from 'vitest';
import { FakePipeline } from './fake-pipeline.js';
import { fakeServer } from './inject-helpers.js';

const chat = {
  method: 'POST' as const,
  url: '/v1/chat/completions',
  payload: { messages: [{ role: 'user', content: 'hi' }], modalities: ['text'] },
};
const bearer = { authorization: 'Bearer k' };

describe('the API key', () => {
  it('guards /v1, metrics and unknown paths; /health and /health/ready are open (probes carry no key)', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake, { apiKey: 'k' }).app;
    for (const req of [
      { method: 'GET' as const, url: '/v1/models' },
      chat,
      { method: 'GET' as const, url: '/metrics' },
      { method: 'GET' as const, url: '/nowhere' },
    ]) {
      const res = await app.inject(req);
      expect(res.statusCode, req.url).toBe(401);
      expect(res.headers['www-authenticate'], req.url).toBe('Bearer');
      expect(res.json().error.code).toBe('OMNI_HTTP_UNAUTHORIZED');
      expect((await app.inject({ ...req, headers: bearer })).statusCode, req.url).not.toBe(401);
    }
    expect(fake.received).toHaveLength(1);
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
    const wrong = await app.inject({ ...chat, headers: { authorization: 'Bearer x' } });
    expect(wrong.statusCode).toBe(401);
  });

  it('--metrics-public opens /metrics only', async () => {
    const app = fakeServer(new FakePipeline(), { apiKey: 'k', metricsPublic: true }).app;
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/models' })).statusCode).toBe(401);
  });
});

describe('readiness and admission', () => {
  it('before attach: /health 200, readiness 503 starting, generation 503 with Retry-After', async () => {
    const server = fakeServer(null);
    const ready = await server.app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ status: 'starting' });
    const res = await server.app.inject(chat);
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    server.attach(new FakePipeline());
    expect((await server.app.inject({ method: 'GET', url: '/health/ready' })).json()).toEqual({
      status: 'ready',
      stages: [
        { stage_id: 0, replicas_up: 1 },
        { stage_id: 1, replicas_up: 1 },
        { stage_id: 2, replicas_up: 1 },
      ],
    });
  });

  it('a stage without a live replica: readiness 503 naming it', async () => {
    const fake = new FakePipeline();
    fake.setLiveReplicas(1, 0);
    const res = await fakeServer(fake).app.inject({ method: 'GET', url: '/health/ready' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ status: 'unavailable', message: 'stage 1 has no live replica' });
  });

  it('--max-inflight: one request more is 429 with Retry-After; once the first ends the next is served', async () => {
    const fake = new FakePipeline();
    const server = fakeServer(fake, { maxInflight: 1 });
    fake.hold();
    const first = server.app.inject(chat);
    await fake.receivedCount(1);
    expect(server.inflight).toBe(1);
    const over = await server.app.inject(chat);
    expect(over.statusCode).toBe(429);
    expect(over.headers['retry-after']).toBe('1');
    expect(over.json().error.code).toBe('OMNI_HTTP_OVERLOADED');
    fake.release();
    expect((await first).statusCode).toBe(200);
    await server.drain(10_000);
    expect(server.inflight).toBe(0);
  });

  it('drain: readiness and new requests 503; a request still running at the deadline is aborted and answered 503', async () => {
    const fake = new FakePipeline();
    const server = fakeServer(fake);
    fake.hold();
    const running = server.app.inject(chat);
    await fake.receivedCount(1);
    const drained = server.drain(1);
    expect((await server.app.inject({ method: 'GET', url: '/health/ready' })).json()).toEqual({ status: 'draining' });
    const late = await server.app.inject(chat);
    expect(late.statusCode).toBe(503);
    expect(late.json().error.message).toContain('draining');
    expect(await drained).toBe(1);
    const res = await running;
    expect(res.statusCode).toBe(503);
    expect(res.json().error.message).toContain('--drain-timeout');
    expect(fake.received[0]!.request.signal.aborted).toBe(true);
  });
});

describe('unknown routes and metrics', () => {
  it('404 lists every endpoint', async () => {
    const res = await fakeServer().app.inject({ method: 'GET', url: '/v2/chat' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message).toBe(
      'no endpoint GET /v2/chat; endpoints: GET /health, GET /health/ready, GET /metrics, GET /v1/models, GET /v1/models/:id, POST /v1/chat/completions, POST /v1/completions, POST /v1/images/generations, POST /v1/audio/speech, POST /v1/responses',
    );
  });

  it('counts answers by route and status', async () => {
    const app = fakeServer().app;
    await app.inject(chat);
    await app.inject({ ...chat, payload: { messages: [] } });
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toContain('omnistage_http_requests_total{endpoint="/v1/chat/completions",status="200"} 1');
    expect(text).toContain('omnistage_http_requests_total{endpoint="/v1/chat/completions",status="400"} 1');
  });
});
