/** Completions, image generation, speech and models through `app.inject()` against a strict fake pipeline. */
import { describe, expect, it } from 'vitest';
import { FakePipeline } from './fake-pipeline.js';
import { fakeServer, sseData } from './inject-helpers.js';

describe('POST /v1/completions', () => {
  it('the prompt goes to the pipeline as it is; only the first text stage runs; streamed the same', async () => {
    const fake = new FakePipeline();
    const app = fakeServer(fake).app;
    const res = await app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { prompt: 'once', max_tokens: 2 },
    });
    expect(res.statusCode).toBe(200);
    expect(fake.received[0]).toMatchObject({
      input: 'once',
      request: { finalStages: [0], params: { 0: { max_tokens: 2 } } },
    });
    expect(res.json()).toMatchObject({
      object: 'text_completion',
      choices: [{ index: 0, text: 'hello world', finish_reason: 'length' }],
    });
    const streamed = await app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { prompt: 'once', stream: true },
    });
    const events = sseData(streamed.body);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as { choices: { text: string; finish_reason: string | null }[] }[];
    expect(chunks.map((c) => c.choices[0]!.text).join('')).toBe('hello world');
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
  });

  it('a pipeline without a text stage: 404 naming its final outputs', async () => {
    const fake = new FakePipeline({ stages: [{ stage_id: 0, final_output_type: 'image' }] });
    const res = await fakeServer(fake).app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: 'x' } });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message).toBe(
      "/v1/completions needs a final stage producing text; this pipeline's final outputs are: image",
    );
    expect(fake.received).toHaveLength(0);
  });
});

describe('POST /v1/images/generations', () => {
  it('size, n and the diffusion fields reach the image stage; the PNG comes back as b64_json', async () => {
    const fake = new FakePipeline();
    const res = await fakeServer(fake).app.inject({
      method: 'POST',
      url: '/v1/images/generations',
      payload: { prompt: 'a cat', size: '32x48', n: 1, seed: 3, num_inference_steps: 2, negative_prompt: 'dog' },
    });
    expect(res.statusCode).toBe(200);
    expect(fake.received[0]).toMatchObject({
      input: 'a cat',
      request: {
        finalStages: [2],
        params: {
          2: {
            width: 32,
            height: 48,
            num_outputs_per_prompt: 1,
            seed: 3,
            num_inference_steps: 2,
            negative_prompt: 'dog',
          },
        },
      },
    });
    const data = res.json().data as { b64_json: string }[];
    expect(data).toHaveLength(1);
    expect(Buffer.from(data[0]!.b64_json, 'base64').subarray(1, 4).toString()).toBe('PNG');
  });

  it('a malformed size is 400 naming it', async () => {
    const fake = new FakePipeline();
    const res = await fakeServer(fake).app.inject({
      method: 'POST',
      url: '/v1/images/generations',
      payload: { prompt: 'a cat', size: 'big' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe('size');
    expect(fake.received).toHaveLength(0);
  });
});

describe('POST /v1/audio/speech', () => {
  it('voice reaches the audio stage; the answer is the audio bytes with their content type', async () => {
    const fake = new FakePipeline();
    const res = await fakeServer(fake).app.inject({
      method: 'POST',
      url: '/v1/audio/speech',
      payload: { input: 'say this', voice: 'alloy' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('audio/wav');
    expect(res.rawPayload.subarray(0, 4).toString()).toBe('RIFF');
    expect(fake.received[0]!.request).toMatchObject({ finalStages: [1], params: { 1: { voice: 'alloy' } } });
  });
});

describe('GET /v1/models', () => {
  it('lists the served name', async () => {
    const res = await fakeServer().app.inject({ method: 'GET', url: '/v1/models' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      object: 'list',
      data: [{ id: 'omni', object: 'model', owned_by: 'omnistage' }],
    });
  });
});
