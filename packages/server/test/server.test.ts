/**
 * OmniServer on a real pipeline (core's bringUp of a reference LLM replica, a real worker process)
 * over real HTTP: the states before attach and while draining, a replica that dies mid-request,
 * and a drain deadline that runs out.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Omnistage,
  bringUp,
  loadPipelineConfig,
  newRunId,
  planPipeline,
  type OmniEvent,
  type RunningPipeline,
} from '@omnistage/core';
import { llmPlugin } from '@omnistage/plugin-llm';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { OmniServer, servePipeline } from '../src/index.js';

// 50 tokens at 30 ms each: a request stays in flight ~1.5 s.
const SLOW_PIPELINE = `
stage_args:
  - stage_id: 0
    stage_type: llm
    engine: reference
    runtime:
      devices: "0"
    engine_args:
      model_stage: slow
      token_delay_ms: 30
    final_output: true
    final_output_type: text
    default_sampling_params:
      temperature: 0.0
      max_tokens: 50
      seed: 1
`;

interface Up {
  omni: Omnistage;
  pipeline: RunningPipeline;
  events: OmniEvent[];
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
}, 30_000);

async function bringUpSlow(): Promise<Up> {
  const dir = await mkdtemp(join(tmpdir(), 'omnistage-server-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const omni = new Omnistage({ plugins: [llmPlugin()], lockDir: join(dir, 'locks') });
  const events: OmniEvent[] = [];
  omni.events.onAny((e) => events.push(e));
  const runId = newRunId();
  const config = await loadPipelineConfig(
    { text: SLOW_PIPELINE, path: join(dir, 'pipeline.yaml') },
    { platform: 'cpu' },
  );
  const plan = await planPipeline(omni, config, { platform: 'cpu', runId, purpose: 'launch', noInline: true });
  const pipeline = await bringUp(omni, plan);
  cleanups.push(() => pipeline.stop('test finished'));
  return { omni, pipeline, events };
}

async function startServer(): Promise<{ server: OmniServer; url: string }> {
  const server = new OmniServer({ logger: pino({ level: 'silent' }), servedModelName: 'slow' });
  cleanups.push(() => server.close());
  return { server, url: await server.listen('127.0.0.1', 0) };
}

const chat = (url: string, body: Record<string, unknown> = {}): Promise<Response> =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], ...body }),
  });

async function waitForEvent(events: OmniEvent[], pred: (e: OmniEvent) => boolean): Promise<OmniEvent> {
  for (;;) {
    const found = events.find(pred);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('OmniServer', () => {
  it('before a pipeline is attached: /health 200, readiness and generation 503 with Retry-After', async () => {
    const { url } = await startServer();
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'starting' });
    const res = await chat(url);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({
      error: { code: 'OMNI_HTTP_UNAVAILABLE', message: expect.stringContaining('coming up') },
    });
  });

  it('--metrics-public: /metrics without the key, /v1 still needs it; /health and /health/ready never do', async () => {
    const server = new OmniServer({
      logger: pino({ level: 'silent' }),
      servedModelName: 'x',
      apiKey: 'k',
      metricsPublic: true,
    });
    cleanups.push(() => server.close());
    const url = await server.listen('127.0.0.1', 0);
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('# TYPE omnistage_http_requests_total counter');
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect((await fetch(`${url}/health/ready`)).status).toBe(503);
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    expect((await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer k' } })).status).toBe(200);
  });

  it('a replica that dies mid-request (no restart policy, no other replica): 502 naming stage and replica; readiness 503 naming the stage', async () => {
    const up = await bringUpSlow();
    const { server, url } = await startServer();
    server.attach(servePipeline(up.omni, up.pipeline));
    expect((await fetch(`${url}/health/ready`)).status).toBe(200);
    const pending = chat(url);
    await waitForEvent(up.events, (e) => e.type === 'request:dispatched');
    const pid = up.pipeline.replicas[0]!.process.pid;
    process.kill(pid, 'SIGKILL');
    const res = await pending;
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string; type: string } };
    expect(body.error).toMatchObject({ code: 'OMNI_WORKER_EXITED', type: 'server_error' });
    expect(body.error.message).toContain(`stage 0 has no live replica: replica 0 (pid ${pid})`);
    expect(body.error.message).toContain('SIGKILL');
    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({
      status: 'unavailable',
      message: 'stage 0 has no live replica',
      stages: [{ stage_id: 0, replicas_up: 0 }],
    });
  }, 60_000);

  it('drain: new requests 503 at once; a request still running at the deadline is aborted in its stage and answered 503', async () => {
    const up = await bringUpSlow();
    const { server, url } = await startServer();
    server.attach(servePipeline(up.omni, up.pipeline));
    const pending = chat(url);
    const dispatched = await waitForEvent(up.events, (e) => e.type === 'request:dispatched');
    expect(server.inflight).toBe(1);
    const drained = server.drain(50);
    const late = await chat(url);
    expect(late.status).toBe(503);
    expect(await late.json()).toMatchObject({ error: { message: expect.stringContaining('draining') } });
    expect(await drained).toBe(1);
    const res = await pending;
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      error: { code: 'OMNI_HTTP_UNAVAILABLE', message: expect.stringContaining('--drain-timeout') },
    });
    const end = await waitForEvent(up.events, (e) => e.type === 'request:stage_end');
    expect(end).toMatchObject({ outcome: 'aborted', request_id: (dispatched as { request_id: string }).request_id });
    expect(server.inflight).toBe(0);
  }, 60_000);
});
