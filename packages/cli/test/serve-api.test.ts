/**
 * `omnistage serve examples/serve/pipeline.yaml`, driven by the official `openai` npm client (chat
 * with text and audio, streaming and not; completions; image generation; speech) and by raw HTTP
 * for health, readiness, metrics and the error answers. Real CLI, real replicas, real sockets.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, requireBuiltCli, runCleanups } from './helpers.js';
import { SERVE_EXAMPLE, parsePrometheus, postJson, startServe, type Served } from './serve-helpers.js';

const KEY = 'test-key-0123456789';
const MODEL = 'omni-demo';
const auth = { authorization: `Bearer ${KEY}` };

function isWav(bytes: Buffer): boolean {
  return bytes.subarray(0, 4).toString('latin1') === 'RIFF' && bytes.subarray(8, 12).toString('latin1') === 'WAVE';
}
function pngSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

describe('omnistage serve: the OpenAI-compatible API', () => {
  let served: Served;
  let client: OpenAI;
  beforeAll(async () => {
    requireBuiltCli();
    const box = await createSandbox();
    served = await startServe(box, SERVE_EXAMPLE, [
      '--api-key',
      KEY,
      '--max-body-mb',
      '1',
      '--events',
      box.eventsFile('api'),
    ]);
    client = new OpenAI({ baseURL: `${served.url}/v1`, apiKey: KEY, maxRetries: 0 });
  }, 90_000);
  afterAll(async () => {
    served?.cli.signal('SIGTERM');
    await served?.cli.waitExit(30_000);
    await runCleanups();
  }, 60_000);

  it('lists the served model', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
  });

  it('chat completion, text: the same text as a completion of the rendered prompt, and streamed deltas add up to it', async () => {
    const messages = [{ role: 'user' as const, content: 'describe a lighthouse' }];
    const chat = await client.chat.completions.create({ model: MODEL, messages, modalities: ['text'] });
    expect(chat.object).toBe('chat.completion');
    expect(chat.choices).toHaveLength(1);
    const text = chat.choices[0]!.message.content!;
    expect(text.split(' ').length).toBeGreaterThan(3);
    // Stage 0 reads "user: <content>" as its prompt: /v1/completions with that prompt gives the same text.
    const completion = await client.completions.create({ model: MODEL, prompt: 'user: describe a lighthouse' });
    expect(completion.choices[0]!.text).toBe(text);
    const other = await client.completions.create({ model: MODEL, prompt: 'user: describe a forest' });
    expect(other.choices[0]!.text).not.toBe(text);

    const stream = await client.chat.completions.create({ model: MODEL, messages, modalities: ['text'], stream: true });
    let streamed = '';
    const finishes: (string | null)[] = [];
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      streamed += chunk.choices[0]?.delta.content ?? '';
      finishes.push(chunk.choices[0]?.finish_reason ?? null);
    }
    expect(streamed).toBe(text);
    expect(finishes.filter((f) => f !== null)).toEqual([chat.choices[0]!.finish_reason]);
  });

  it('chat completion, audio: message.audio.data is a base64 WAV (streaming too), transcript is the text', async () => {
    const messages = [{ role: 'user' as const, content: 'say something' }];
    const chat = await client.chat.completions.create({ model: MODEL, messages, modalities: ['text', 'audio'] });
    expect(chat.choices).toHaveLength(2);
    const [text, audio] = chat.choices;
    expect(text!.message.content).toMatch(/\w/);
    const wav = Buffer.from(audio!.message.audio!.data, 'base64');
    expect(isWav(wav)).toBe(true);
    expect(wav.length).toBeGreaterThan(1000);
    expect(audio!.message.audio!.transcript).toBe(text!.message.content);

    const stream = await client.chat.completions.create({
      model: MODEL,
      messages,
      modalities: ['audio'],
      stream: true,
    });
    const pieces: string[] = [];
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as { audio?: { data?: string } } | undefined;
      if (delta?.audio?.data) pieces.push(delta.audio.data);
    }
    expect(pieces).toHaveLength(1);
    expect(Buffer.from(pieces[0]!, 'base64').equals(wav)).toBe(true);
  });

  it('chat with an image (data URL) reaches stage 0: the prompt gains an <image> and the text changes', async () => {
    const png = (await client.images.generate({ model: MODEL, prompt: 'a dot', size: '256x256' })).data![0]!.b64_json!;
    const plain = await client.chat.completions.create({
      model: MODEL,
      modalities: ['text'],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }] }],
    });
    const withImage = await client.chat.completions.create({
      model: MODEL,
      modalities: ['text'],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'what is this' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
          ],
        },
      ],
    });
    const sameAsRendered = await client.completions.create({ model: MODEL, prompt: 'user: what is this<image>' });
    expect(withImage.choices[0]!.message.content).toBe(sameAsRendered.choices[0]!.text);
    expect(withImage.choices[0]!.message.content).not.toBe(plain.choices[0]!.message.content);
  });

  it('completions stream: deltas add up to the non-streamed text', async () => {
    const full = await client.completions.create({ model: MODEL, prompt: 'once upon a time', max_tokens: 8 });
    const stream = await client.completions.create({
      model: MODEL,
      prompt: 'once upon a time',
      max_tokens: 8,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(full.choices[0]!.text);
    // max_tokens reached stage 0: 8 words, cut for length.
    expect(text.split(' ')).toHaveLength(8);
    expect(full.choices[0]!.finish_reason).toBe('length');
  });

  it('image generation: n PNGs of the asked size; the seed makes them reproducible', async () => {
    const a = await client.images.generate({
      model: MODEL,
      prompt: 'a red fox',
      n: 2,
      size: '256x256',
      response_format: 'b64_json',
      seed: 3,
    } as OpenAI.ImageGenerateParamsNonStreaming);
    expect(a.data).toHaveLength(2);
    const bytes = a.data!.map((d) => Buffer.from(d.b64_json!, 'base64'));
    for (const b of bytes) expect(pngSize(b)).toEqual({ width: 256, height: 256 });
    expect(bytes[0]!.equals(bytes[1]!)).toBe(false);
    const again = await client.images.generate({
      model: MODEL,
      prompt: 'a red fox',
      n: 1,
      size: '256x256',
      seed: 3,
    } as OpenAI.ImageGenerateParamsNonStreaming);
    expect(Buffer.from(again.data![0]!.b64_json!, 'base64').equals(bytes[0]!)).toBe(true);
    const otherSeed = await client.images.generate({
      model: MODEL,
      prompt: 'a red fox',
      n: 1,
      size: '256x256',
      seed: 4,
    } as OpenAI.ImageGenerateParamsNonStreaming);
    expect(Buffer.from(otherSeed.data![0]!.b64_json!, 'base64').equals(bytes[0]!)).toBe(false);
  });

  it('speech: WAV bytes with Content-Type audio/wav', async () => {
    const res = await client.audio.speech.create({
      model: MODEL,
      voice: 'alloy',
      input: 'hello there',
      response_format: 'wav',
    });
    expect(res.headers.get('content-type')).toBe('audio/wav');
    expect(isWav(Buffer.from(await res.arrayBuffer()))).toBe(true);
  });

  it('the client sees errors as OpenAI errors: unknown model is 404, a bad field 400 naming it', async () => {
    await expect(
      client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toMatchObject({ status: 404, param: 'model' });
    await expect(
      client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'x' }],
        modalities: ['video' as 'text'],
      }),
    ).rejects.toMatchObject({
      status: 400,
      param: 'modalities',
      message: expect.stringContaining('text, audio, image'),
    });
  });

  it('health and readiness need no key (probes carry none); the API and metrics do (401); metrics parse as Prometheus text', async () => {
    expect((await fetch(`${served.url}/health`)).status).toBe(200);
    const noKey = await fetch(`${served.url}/v1/models`);
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get('www-authenticate')).toBe('Bearer');
    expect(await noKey.json()).toMatchObject({
      error: { type: 'authentication_error', code: 'OMNI_HTTP_UNAUTHORIZED' },
    });
    expect((await fetch(`${served.url}/v1/models`, { headers: { authorization: 'Bearer wrong-key' } })).status).toBe(
      401,
    );
    const ready = await fetch(`${served.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      stages: [0, 1, 2].map((stage_id) => ({ stage_id, replicas_up: 1 })),
    });

    expect((await fetch(`${served.url}/metrics`)).status).toBe(401);
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'count me' }] });
    const res = await fetch(`${served.url}/metrics`, { headers: auth });
    expect(res.headers.get('content-type')).toContain('text/plain');
    const m = parsePrometheus(await res.text());
    for (const id of [0, 1, 2]) {
      expect(m.get(`omnistage_replicas_up{stage_id="${id}"}`)).toBe(1);
      expect(m.get(`omnistage_replica_bring_up_seconds{stage_id="${id}",replica_id="0"}`)).toBeGreaterThan(0);
      expect(m.get(`omnistage_stage_duration_seconds_count{stage_id="${id}",outcome="done"}`)).toBeGreaterThan(0);
      expect(m.get(`omnistage_stage_time_to_first_chunk_seconds_count{stage_id="${id}"}`)).toBeGreaterThan(0);
      expect(m.get(`omnistage_stage_queue_depth{stage_id="${id}"}`)).toBe(0);
    }
    expect(m.get('omnistage_http_requests_total{endpoint="/v1/chat/completions",status="200"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(m.get('omnistage_http_requests_total{endpoint="/v1/models",status="401"}')).toBeGreaterThanOrEqual(2);
    expect(m.get('omnistage_http_requests_total{endpoint="/health/ready",status="200"}')).toBe(1);
    expect(m.get('omnistage_request_duration_seconds_count{endpoint="/v1/chat/completions"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(
      m.get('omnistage_time_to_first_chunk_seconds_count{endpoint="/v1/chat/completions"}'),
    ).toBeGreaterThanOrEqual(1);
    // The thinker's 96 KiB latent goes through /dev/shm once per request that ran stage 0 to the end.
    expect(m.get('omnistage_payloads_total{connector="shm"}')).toBeGreaterThanOrEqual(1);
    expect(m.get('omnistage_payload_bytes_total{connector="shm"}')! % (16 * 1536 * 4)).toBe(0);
    expect(m.get('omnistage_requests_in_flight')).toBe(0);
  });

  it('answers 400 naming the field for malformed JSON, wrong types, unknown fields and bad media; 404 for unknown routes; 413 over the body limit', async () => {
    const chatUrl = `${served.url}/v1/chat/completions`;
    const cases: [unknown, string, RegExp][] = [
      ['{"messages": [', 'body', /not valid JSON/],
      [{ messages: [{ role: 'user', content: 'x' }], max_tokens: '5' }, 'max_tokens', /must be integer/],
      [{ messages: [{ role: 'user', content: 'x' }], temprature: 0.5 }, 'temprature', /unknown field "temprature"/],
      [
        { messages: [{ role: 'wizard', content: 'x' }] },
        'messages[0].role',
        /allowed values: system, developer, user, assistant/,
      ],
      [{ messages: [] }, 'messages', /must NOT have fewer than 1 items/],
      [{}, 'messages', /missing required field "messages"/],
      [
        {
          messages: [
            { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] },
          ],
        },
        'messages[0].content[0].image_url.url',
        /data URL/,
      ],
      [
        {
          messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: '%%%', format: 'wav' } }] }],
        },
        'messages[0].content[0].input_audio.data',
        /not valid base64/,
      ],
      [
        { messages: [{ role: 'user', content: 'x' }], sampling_params_list: [{}, {}, {}, {}] },
        'sampling_params_list',
        /4 entries; this pipeline has 3 stage/,
      ],
    ];
    for (const [body, param, message] of cases) {
      const res = await postJson(chatUrl, body, auth);
      const json = (await res.json()) as { error: { param: string; message: string; code: string; type: string } };
      expect({ status: res.status, param: json.error.param }, JSON.stringify(body)).toEqual({ status: 400, param });
      expect(json.error.message).toMatch(message);
      expect(json.error).toMatchObject({ code: 'OMNI_HTTP_INVALID_REQUEST', type: 'invalid_request_error' });
    }
    const speech = await postJson(`${served.url}/v1/audio/speech`, { input: 'x', response_format: 'mp3' }, auth);
    expect(speech.status).toBe(400);
    expect(await speech.json()).toMatchObject({
      error: { param: 'response_format', message: expect.stringContaining('wav') },
    });

    const missing = await postJson(`${served.url}/v1/embeddings`, { input: 'x' }, auth);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toContain(
      'POST /v1/chat/completions',
    );

    const text = await postJson(chatUrl, 'hello', { ...auth, 'content-type': 'text/plain' });
    expect(text.status).toBe(400);
    expect(await text.json()).toMatchObject({
      error: { code: 'OMNI_HTTP_INVALID_REQUEST', param: 'body', message: 'body must be object' },
    });
    const xml = await postJson(chatUrl, '<messages/>', { ...auth, 'content-type': 'application/xml' });
    expect(xml.status).toBe(415);
    expect(await xml.json()).toMatchObject({ error: { code: 'OMNI_HTTP_INVALID_REQUEST' } });

    const big = await postJson(chatUrl, { messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }] }, auth);
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({
      error: { param: 'body', message: expect.stringContaining('--max-body-mb') },
    });
  });
});
