/**
 * The front door as OpenAI clients use it (issue #21), through `app.inject()` against a strict
 * fake pipeline: OpenAI's fields accepted or refused by name, usage, audio formats, default
 * modalities, the Responses API, models/{id}, 405, CORS, x-request-id, drain headers, statuses.
 */
import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { speechRoute } from '../src/speech-stage.js';
import { FakePipeline, PCM_SAMPLES } from './fake-pipeline.js';
import { fakeServer, sseData } from './inject-helpers.js';

const messages = [{ role: 'user', content: 'hi' }];
const post = (url: string, payload: Record<string, unknown>, headers: Record<string, string> = {}) => ({
  method: 'POST' as const,
  url,
  payload,
  headers,
});

describe("OpenAI's fields", () => {
  it('no-op fields are accepted; result-changing ones are honoured or refused as not supported; ours stay a 400 with did-you-mean', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const ok = await app.inject(
      post('/v1/chat/completions', {
        messages,
        store: false,
        metadata: { a: 'b' },
        user: 'u',
        service_tier: 'auto',
        parallel_tool_calls: true,
        stream_options: null,
        n: 1,
        logprobs: false,
        tools: [],
        tool_choice: 'none',
        response_format: { type: 'text' },
        frequency_penalty: 0.5,
        presence_penalty: 0.25,
      }),
    );
    expect(ok.statusCode, ok.body).toBe(200);
    expect(fake.received[0]!.request.params).toEqual({ 0: { frequency_penalty: 0.5, presence_penalty: 0.25 } });
    const refused: [Record<string, unknown>, string][] = [
      [{ n: 2 }, 'n'],
      [{ tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
      [{ logprobs: true }, 'logprobs'],
      [{ response_format: { type: 'json_object' } }, 'response_format'],
    ];
    for (const [extra, param] of refused) {
      const res = await app.inject(post('/v1/chat/completions', { messages, ...extra }));
      expect(res.statusCode).toBe(400);
      expect(res.json().error.param).toBe(param);
      expect(res.json().error.message).toContain('is not supported by this pipeline');
    }
    const typo = await app.inject(post('/v1/chat/completions', { messages, max_token: 5 }));
    expect(typo.statusCode).toBe(400);
    expect(typo.json().error.message).toContain('unknown field "max_token": did you mean "max_tokens"?');
    expect(fake.received).toHaveLength(1);
  });

  it('completions: a prompt array is one choice per prompt, each its own request; echo prefixes the prompt; token ids 400', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const res = await app.inject(post('/v1/completions', { prompt: ['a', 'b'], echo: true }));
    expect(res.statusCode, res.body).toBe(200);
    expect(fake.received.map((r) => r.input)).toEqual(['a', 'b']);
    expect(new Set(fake.received.map((r) => r.request.requestId)).size).toBe(2);
    expect(res.json().choices.map((c: { index: number; text: string }) => [c.index, c.text])).toEqual([
      [0, 'ahello world'],
      [1, 'bhello world'],
    ]);
    const ids = await app.inject(post('/v1/completions', { prompt: [1, 2, 3] }));
    expect(ids.statusCode).toBe(400);
    expect(ids.json().error.param).toBe('prompt');
  });
});

describe('usage', () => {
  const script = () => [
    { kind: 'chunk' as const, stage_id: 0, data: { text: 'hey' } },
    {
      kind: 'final' as const,
      stage_id: 0,
      data: { text: 'hey', finish_reason: 'stop', token_ids: [1], usage: { prompt_tokens: 7, completion_tokens: 1 } },
    },
  ];
  it('in every answer, and in a last streamed chunk with stream_options.include_usage', async () => {
    const app = fakeServer(new FakePipeline({ script })).app;
    const usage = { prompt_tokens: 7, completion_tokens: 1, total_tokens: 8 };
    expect((await app.inject(post('/v1/chat/completions', { messages }))).json().usage).toEqual(usage);
    expect((await app.inject(post('/v1/completions', { prompt: 'x' }))).json().usage).toEqual(usage);
    const streamed = sseData(
      (
        await app.inject(
          post('/v1/chat/completions', { messages, stream: true, stream_options: { include_usage: true } }),
        )
      ).body,
    ) as { choices: unknown[]; usage: unknown }[];
    expect(streamed.at(-1)).toBe('[DONE]');
    const last = streamed.at(-2)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(usage);
    expect(streamed.slice(0, -2).every((c) => c.usage === null)).toBe(true);
  });
});

describe('modalities and audio', () => {
  it('no modalities: text only, and only the text stage runs', async () => {
    const fake = new FakePipeline();
    const res = await fakeServer(fake).app.inject(post('/v1/chat/completions', { messages }));
    expect(fake.received[0]!.request.finalStages).toEqual([0]);
    expect(res.json().choices).toHaveLength(1);
  });

  it('audio.voice reaches the audio stage; format pcm16 is the raw samples; another format is a 400 listing them', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const res = await app.inject(
      post('/v1/chat/completions', {
        messages,
        modalities: ['text', 'audio'],
        audio: { voice: 'ash', format: 'pcm16' },
      }),
    );
    expect(res.statusCode, res.body).toBe(200);
    expect(fake.received[0]!.request.params).toEqual({ 1: { voice: 'ash' } });
    const data = Buffer.from(res.json().choices[1].message.audio.data, 'base64');
    expect(data).toEqual(PCM_SAMPLES);
    const bad = await app.inject(post('/v1/chat/completions', { messages, audio: { voice: 'ash', format: 'mp3' } }));
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ param: 'audio.format', message: expect.stringContaining('wav, pcm16') });
  });

  it('speech: voice and speed reach the audio stage; response_format pcm is raw; mp3 is a 400 listing wav, pcm', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const res = await app.inject(
      post('/v1/audio/speech', { input: 'x', voice: 'ash', speed: 1.5, response_format: 'pcm' }),
    );
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('audio/pcm');
    expect(res.rawPayload).toEqual(PCM_SAMPLES);
    expect(fake.received[0]!.request.params).toEqual({ 1: { voice: 'ash', speed: 1.5 } });
    const bad = await app.inject(post('/v1/audio/speech', { input: 'x', response_format: 'mp3' }));
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('the formats are: wav, pcm');
  });
});

describe('the speech stage', () => {
  const stage = (stage_id: number, final_output_type: string | null, model_stage: string, sources: number[]) => ({
    stage_id,
    final_output_type,
    model_stage,
    sources,
  });
  const omni = [stage(0, 'text', 'thinker', []), stage(1, null, 'talker', [0]), stage(2, 'audio', 'code2wav', [1])];

  it('the rule: --speech-stage, else a talker/tts stage, else an audio stage reading text or nothing; else none', () => {
    expect(speechRoute(omni)).toEqual({ entryStage: 1, audioStage: 2 });
    expect(speechRoute(omni, 2)).toEqual({ entryStage: 2, audioStage: 2 });
    expect(() => speechRoute(omni, 7)).toThrow('--speech-stage 7 is not a stage leading to an audio output');
    expect(speechRoute([stage(0, 'text', 'thinker', []), stage(1, 'audio', 'code2wav', [0])])).toEqual({
      entryStage: 1,
      audioStage: 1,
    });
    expect(speechRoute([stage(0, 'audio', 'voice', [])])).toEqual({ entryStage: 0, audioStage: 0 });
    expect(speechRoute([stage(0, 'text', 'thinker', []), stage(1, 'image', 'dit', [0])])).toBeNull();
  });

  it('speech enters at the speech stage (the stages before it skipped); a pipeline without one answers 400', async () => {
    const fake = new FakePipeline({ speech: { entryStage: 1, audioStage: 1 } });
    const res = await fakeServer(fake).app.inject(post('/v1/audio/speech', { input: 'Hi.' }));
    expect(res.statusCode).toBe(200);
    expect(fake.received[0]).toMatchObject({ input: 'Hi.', request: { entryStage: 1, finalStages: [1] } });
    const none = new FakePipeline({ speech: null });
    const bad = await fakeServer(none).app.inject(post('/v1/audio/speech', { input: 'Hi.' }));
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('needs a speech stage');
    expect(none.received).toHaveLength(0);
  });
});

describe('POST /v1/responses', () => {
  it('text in, one output_text message out, with usage; streamed as the Responses API events', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const res = await app.inject(
      post('/v1/responses', { input: 'hi', instructions: 'be brief', max_output_tokens: 4 }),
    );
    expect(res.statusCode, res.body).toBe(200);
    expect(fake.received[0]!.input).toMatchObject({ prompt: 'developer: be brief\nuser: hi' });
    expect(fake.received[0]!.request).toMatchObject({ finalStages: [0], params: { 0: { max_tokens: 4 } } });
    expect(res.json()).toMatchObject({
      object: 'response',
      status: 'incomplete',
      output: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'hello world' }] }],
      usage: { input_tokens: 0, output_tokens: 0 },
    });
    const streamed = await app.inject(
      post('/v1/responses', { input: [{ role: 'user', content: 'hi' }], stream: true }),
    );
    const types = streamed.body
      .split('\n\n')
      .filter((e) => e)
      .map((e) => /^event: (.+)$/m.exec(e)![1]);
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.incomplete',
    ]);
  });
});

describe('routes, methods, CORS, request ids', () => {
  it('GET /v1/models/{id}: the served model, 404 for another; a wrong method is 405 with Allow', async () => {
    const app = fakeServer().app;
    expect((await app.inject({ method: 'GET', url: '/v1/models/omni' })).json()).toMatchObject({ id: 'omni' });
    expect((await app.inject({ method: 'GET', url: '/v1/models/gpt' })).statusCode).toBe(404);
    const res = await app.inject({ method: 'GET', url: '/v1/chat/completions' });
    expect(res.statusCode).toBe(405);
    expect(res.headers['allow']).toBe('POST');
  });

  it('CORS only for --allowed-origins: preflight 204 before the key; other origins get no CORS headers', async () => {
    const off = fakeServer(new FakePipeline(), { apiKey: 'k' }).app;
    const plain = await off.inject({ method: 'GET', url: '/health', headers: { origin: 'https://a.example' } });
    expect(plain.headers['access-control-allow-origin']).toBeUndefined();
    const app = fakeServer(new FakePipeline(), { apiKey: 'k', allowedOrigins: ['https://a.example'] }).app;
    const pre = await app.inject({
      method: 'OPTIONS',
      url: '/v1/chat/completions',
      headers: { origin: 'https://a.example', 'access-control-request-method': 'POST' },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('https://a.example');
    const other = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://b.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('x-request-id: echoed and used as the pipeline request id; generated when absent; a bad one is 400', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const res = await app.inject(post('/v1/chat/completions', { messages }, { 'x-request-id': 'abc-123' }));
    expect(res.headers['x-request-id']).toBe('abc-123');
    expect(fake.received[0]!.request.requestId).toBe('abc-123');
    expect(res.json().id).toBe('chatcmpl-abc-123');
    const gen = await app.inject(post('/v1/chat/completions', { messages }));
    expect(gen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(fake.received[1]!.request.requestId).toBe(gen.headers['x-request-id']);
    const bad = await app.inject(post('/v1/chat/completions', { messages }, { 'x-request-id': 'a b\u00e9' }));
    expect(bad.statusCode).toBe(400);
  });
});

describe('operations', () => {
  it('while draining: 503 with Retry-After and Connection: close', async () => {
    const server = fakeServer();
    server.stopAccepting();
    const res = await server.app.inject(post('/v1/chat/completions', { messages }));
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.headers['connection']).toBe('close');
  });

  it('an image size past the limit is a 400 naming size, before the pipeline', async () => {
    const fake = new FakePipeline();
    const res = await fakeServer(fake).app.inject(
      post('/v1/images/generations', { prompt: 'p', size: '100000x100000' }),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe('size');
    expect(fake.received).toHaveLength(0);
  });

  it('a stream that fails after its headers is counted apart from the 200s', async () => {
    let n = 0;
    const fake = new FakePipeline({
      script: () => [
        { kind: 'chunk', stage_id: 0, data: { text: 'a' } },
        {
          kind: 'final',
          stage_id: 0,
          get data(): unknown {
            n++;
            throw new OmniError('OMNI_REQUEST_FAILED', 'stage 0 replica 0 failed', {
              context: { stage_id: 0, replica_id: 0 },
            });
          },
        },
      ],
    });
    const app = fakeServer(fake).app;
    const res = await app.inject(post('/v1/chat/completions', { messages, stream: true }));
    expect(res.statusCode).toBe(200);
    expect(n).toBe(1);
    expect(sseData(res.body).at(-2)).toMatchObject({ error: { code: 'OMNI_REQUEST_FAILED' } });
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain(
      'omnistage_http_requests_total{endpoint="/v1/chat/completions",status="stream_failed"} 1',
    );
    expect(metrics).toContain(
      'omnistage_http_stream_failures_total{endpoint="/v1/chat/completions",code="OMNI_REQUEST_FAILED"} 1',
    );
  });
});
