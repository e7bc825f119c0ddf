/** `POST /v1/chat/completions` through `app.inject()` against a strict fake pipeline. */
import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { FakePipeline } from './fake-pipeline.js';
import { fakeServer, sseData } from './inject-helpers.js';

const URL = '/v1/chat/completions';
const messages = [
  { role: 'system', content: 'be brief' },
  { role: 'user', content: 'hi' },
];

describe('POST /v1/chat/completions', () => {
  it('text: stage 0 gets the rendered prompt and the sampling fields; one choice with the final text', async () => {
    const fake = new FakePipeline();
    const res = await fakeServer(fake).app.inject({
      method: 'POST',
      url: URL,
      payload: { model: 'omni', messages, modalities: ['text'], max_tokens: 5, temperature: 0.5, top_k: 3 },
    });
    expect(res.statusCode).toBe(200);
    expect(fake.received).toHaveLength(1);
    const [{ input, request }] = fake.received as [(typeof fake.received)[0]];
    expect(input).toEqual({
      prompt: 'system: be brief\nuser: hi',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
    });
    expect(request.finalStages).toEqual([0]);
    expect(request.params).toEqual({ 0: { max_tokens: 5, temperature: 0.5, top_k: 3 } });
    const body = res.json();
    expect(body).toMatchObject({
      id: `chatcmpl-${request.requestId}`,
      object: 'chat.completion',
      model: 'omni',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hello world' }, finish_reason: 'length' }],
    });
    expect(body.choices).toHaveLength(1);
  });

  it('sampling_params_list is merged per stage over the top-level fields; more entries than stages is 400', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const res = await app.inject({
      method: 'POST',
      url: URL,
      payload: { messages, max_tokens: 5, sampling_params_list: [{ seed: 1 }, null, { num_inference_steps: 2 }] },
    });
    expect(res.statusCode).toBe(200);
    expect(fake.received[0]!.request.params).toEqual({ 0: { max_tokens: 5, seed: 1 }, 2: { num_inference_steps: 2 } });
    const bad = await app.inject({
      method: 'POST',
      url: URL,
      payload: { messages, sampling_params_list: [{}, {}, {}, {}] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ param: 'sampling_params_list', code: 'OMNI_HTTP_INVALID_REQUEST' });
    expect(fake.received).toHaveLength(1);
  });

  it('text, audio and image: one choice per modality, the audio carrying the text as transcript', async () => {
    const fake = new FakePipeline();
    const res = await fakeServer(fake).app.inject({
      method: 'POST',
      url: URL,
      payload: { messages, modalities: ['text', 'audio', 'image'] },
    });
    expect(res.statusCode).toBe(200);
    expect(fake.received[0]!.request.finalStages).toEqual([0, 1, 2]);
    const [text, audio, image] = res.json().choices;
    expect(text.message.content).toBe('hello world');
    expect(audio.message.audio).toMatchObject({ transcript: 'hello world', data: expect.any(String) });
    expect(Buffer.from(audio.message.audio.data, 'base64').subarray(0, 4).toString()).toBe('RIFF');
    expect(image.message.content[0].image_url.url).toMatch(/^data:image\/png;base64,/);
  });

  it('streamed: a delta per text chunk, the finish chunk, then [DONE]', async () => {
    const fake = new FakePipeline();
    const res = await fakeServer(fake).app.inject({
      method: 'POST',
      url: URL,
      payload: { messages, modalities: ['text'], stream: true },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const events = sseData(res.body);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as {
      object: string;
      choices: { delta: { content?: string }; finish_reason: string | null }[];
    }[];
    expect(chunks.map((c) => c.object)).toEqual(Array(chunks.length).fill('chat.completion.chunk'));
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('hello world');
    expect(chunks.map((c) => c.choices[0]!.finish_reason)).toEqual([null, null, 'length']);
  });

  it('a modality the pipeline cannot produce: 400 naming the ones it has; nothing reaches the pipeline', async () => {
    const fake = new FakePipeline({ stages: [{ stage_id: 0, final_output_type: 'text' }] });
    const res = await fakeServer(fake).app.inject({
      method: 'POST',
      url: URL,
      payload: { messages, modalities: ['audio'] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toEqual({
      message: 'this pipeline cannot produce "audio"; its final outputs are: text',
      type: 'invalid_request_error',
      param: 'modalities',
      code: 'OMNI_HTTP_INVALID_REQUEST',
    });
    expect(fake.received).toHaveLength(0);
  });

  it('bad input is a 400 naming the field: unknown field, wrong type, bad content part, another model (404)', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const cases: [unknown, number, string][] = [
      [{ messages, max_tokns: 5 }, 400, 'max_tokns'],
      [{ messages, max_tokens: '5' }, 400, 'max_tokens'],
      [{ messages: [{ role: 'user', content: [{ type: 'video' }] }] }, 400, 'messages[0].content[0].type'],
      [
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] },
        400,
        'messages[0].content[0].image_url.url',
      ],
      [{ messages, model: 'gpt-4o' }, 404, 'model'],
    ];
    for (const [payload, status, param] of cases) {
      const res = await app.inject({ method: 'POST', url: URL, payload: payload as Record<string, unknown> });
      expect(res.statusCode, JSON.stringify(payload)).toBe(status);
      expect(res.json().error.param, JSON.stringify(payload)).toBe(param);
    }
    expect(fake.received).toHaveLength(0);
  });

  it('a request the pipeline fails: 502 naming stage and replica; streamed, an error event after the chunks', async () => {
    const failing = new FakePipeline({
      script: () => {
        throw new OmniError('OMNI_REQUEST_FAILED', 'stage 0 replica 0 (pid 42) failed the request: boom', {
          context: { stage_id: 0, replica_id: 0 },
        });
      },
    });
    const app = fakeServer(failing).app;
    const res = await app.inject({ method: 'POST', url: URL, payload: { messages, modalities: ['text'] } });
    expect(res.statusCode).toBe(502);
    expect(res.json().error).toMatchObject({ code: 'OMNI_REQUEST_FAILED', message: expect.stringContaining('pid 42') });
    const streamed = await app.inject({
      method: 'POST',
      url: URL,
      payload: { messages, modalities: ['text'], stream: true },
    });
    // Nothing was sent yet when it failed: the status can still say so.
    expect(streamed.statusCode).toBe(502);
  });
});
