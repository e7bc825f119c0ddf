/**
 * `omnistage serve` driven by the clients people point at OpenAI-compatible servers, as pinned
 * devDependencies: the official `openai` SDK, the Vercel AI SDK (`ai` with `@ai-sdk/openai` and
 * `@ai-sdk/openai-compatible`) and LangChain (`@langchain/openai`). Real CLI, real replicas on
 * reference engines, real sockets: chat (plain, streamed with usage, audio), completions (a prompt
 * array), responses, images, speech and errors, each as the client sends it by default.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI, OpenAI as LangChainOpenAI } from '@langchain/openai';
import { experimental_generateSpeech, generateImage, generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, requireBuiltCli, runCleanups } from './helpers.js';
import { SERVE_EXAMPLE, startServe, type Served } from './serve-helpers.js';

const KEY = 'client-key-0123456789';
const MODEL = 'omni-demo';

const isWav = (bytes: Uint8Array): boolean => Buffer.from(bytes.subarray(0, 4)).toString('latin1') === 'RIFF';
const isPng = (bytes: Uint8Array): boolean => Buffer.from(bytes.subarray(1, 4)).toString('latin1') === 'PNG';

let served: Served;
let baseURL: string;
beforeAll(async () => {
  requireBuiltCli();
  const box = await createSandbox();
  served = await startServe(box, SERVE_EXAMPLE, ['--api-key', KEY]);
  baseURL = `${served.url}/v1`;
}, 90_000);
afterAll(async () => {
  served?.cli.signal('SIGTERM');
  await served?.cli.waitExit(30_000);
  await runCleanups();
}, 60_000);

describe('openai (official SDK)', () => {
  const client = (): OpenAI => new OpenAI({ baseURL, apiKey: KEY, maxRetries: 0 });

  it('chat: plain, and streamed with include_usage (usage in the last chunk)', async () => {
    const messages = [{ role: 'user' as const, content: 'tell me about the sea' }];
    const chat = await client().chat.completions.create({ model: MODEL, messages });
    expect(chat.choices).toHaveLength(1);
    expect(chat.choices[0]!.message.content).toMatch(/\w/);
    expect(chat.usage!.completion_tokens).toBeGreaterThan(0);
    expect(chat.usage!.prompt_tokens).toBeGreaterThan(0);
    const stream = await client().chat.completions.create({
      model: MODEL,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(chat.choices[0]!.message.content);
    expect(usage).toEqual(chat.usage);
  });

  it('chat with audio: audio {voice, format} as WAV and as pcm16 (the same samples without the header)', async () => {
    const messages = [{ role: 'user' as const, content: 'tell me about the sea' }];
    const audio = await client().chat.completions.create({
      model: MODEL,
      messages,
      modalities: ['text', 'audio'],
      audio: { voice: 'alloy', format: 'wav' },
    });
    const wav = Buffer.from(audio.choices[1]!.message.audio!.data, 'base64');
    expect(isWav(wav)).toBe(true);
    const pcm = await client().chat.completions.create({
      model: MODEL,
      messages,
      modalities: ['audio'],
      audio: { voice: 'alloy', format: 'pcm16' },
    });
    expect(Buffer.from(pcm.choices[0]!.message.audio!.data, 'base64')).toEqual(wav.subarray(44));
  });

  it('completions with a prompt array, responses (plain and streamed), models.retrieve', async () => {
    const completion = await client().completions.create({ model: MODEL, prompt: ['one', 'two'] });
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(completion.choices[0]!.text).not.toBe(completion.choices[1]!.text);
    const response = await client().responses.create({ model: MODEL, input: 'tell me about the sea' });
    expect(response.output_text).toMatch(/\w/);
    expect(response.usage!.output_tokens).toBeGreaterThan(0);
    const events = await client().responses.create({ model: MODEL, input: 'tell me about the sea', stream: true });
    let streamed = '';
    let last = '';
    for await (const e of events) {
      if (e.type === 'response.output_text.delta') streamed += e.delta;
      last = e.type;
    }
    expect(streamed).toBe(response.output_text);
    expect(['response.completed', 'response.incomplete']).toContain(last);
    expect((await client().models.retrieve(MODEL)).id).toBe(MODEL);
  });

  it('images and speech; errors are the SDK error classes with the field named', async () => {
    const image = await client().images.generate({ model: MODEL, prompt: 'a red fox', size: '32x32' });
    expect(isPng(Buffer.from(image.data![0]!.b64_json!, 'base64'))).toBe(true);
    const speech = await client().audio.speech.create({
      model: MODEL,
      input: 'hello',
      voice: 'alloy',
      response_format: 'wav',
    });
    expect(isWav(new Uint8Array(await speech.arrayBuffer()))).toBe(true);
    const bad = client().chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'x' }],
      tools: [{ type: 'function', function: { name: 'f' } }],
    });
    await expect(bad).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(bad).rejects.toMatchObject({ status: 400, param: 'tools' });
    await expect(client().models.retrieve('gpt-4o')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const noKey = new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 });
    await expect(noKey.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe('Vercel AI SDK', () => {
  it('@ai-sdk/openai: generateText (Responses API), streamText on chat with usage, images, speech', async () => {
    const openai = createOpenAI({ baseURL, apiKey: KEY });
    const plain = await generateText({ model: openai(MODEL), prompt: 'tell me about the sea', maxRetries: 0 });
    expect(plain.text).toMatch(/\w/);
    expect(plain.usage.outputTokens).toBeGreaterThan(0);
    const stream = streamText({ model: openai.chat(MODEL), prompt: 'tell me about the sea', maxRetries: 0 });
    let text = '';
    for await (const delta of stream.textStream) text += delta;
    expect(text).toMatch(/\w/);
    expect((await stream.usage).outputTokens).toBeGreaterThan(0);
    const image = await generateImage({
      model: openai.image(MODEL),
      prompt: 'a red fox',
      size: '32x32',
      maxRetries: 0,
    });
    expect(isPng(image.image.uint8Array)).toBe(true);
    const speech = await experimental_generateSpeech({
      model: openai.speech(MODEL),
      text: 'hello',
      outputFormat: 'wav',
      maxRetries: 0,
    });
    expect(isWav(speech.audio.uint8Array)).toBe(true);
  });

  it('@ai-sdk/openai-compatible with includeUsage: generateText and streamText', async () => {
    const provider = createOpenAICompatible({ name: 'omnistage', baseURL, apiKey: KEY, includeUsage: true });
    const plain = await generateText({ model: provider(MODEL), prompt: 'tell me about the sea', maxRetries: 0 });
    expect(plain.text).toMatch(/\w/);
    const stream = streamText({ model: provider(MODEL), prompt: 'tell me about the sea', maxRetries: 0 });
    let text = '';
    for await (const delta of stream.textStream) text += delta;
    expect(text).toBe(plain.text);
    expect((await stream.usage).inputTokens).toBeGreaterThan(0);
  });
});

describe('LangChain (@langchain/openai)', () => {
  it('ChatOpenAI invoke and stream; OpenAI (completions) invoke', async () => {
    const chat = new ChatOpenAI({ model: MODEL, apiKey: KEY, configuration: { baseURL }, maxRetries: 0 });
    const answer = await chat.invoke('tell me about the sea');
    expect(String(answer.content)).toMatch(/\w/);
    expect(answer.usage_metadata?.output_tokens).toBeGreaterThan(0);
    let streamed = '';
    for await (const chunk of await chat.stream('tell me about the sea')) streamed += String(chunk.content);
    expect(streamed).toBe(String(answer.content));
    const llm = new LangChainOpenAI({ model: MODEL, apiKey: KEY, configuration: { baseURL }, maxRetries: 0 });
    expect(await llm.invoke('once upon a time')).toMatch(/\w/);
  });
});
