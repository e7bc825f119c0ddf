/**
 * The OpenAI-completions connection on its own, against scripted in-process HTTP servers: SSE
 * framing, request bodies, error mapping, close/abort. The end-to-end path (real `vllm serve`
 * stand-in, bring-up, teardown) is in vllm-engine.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ReplicaOutputChunk } from '@omnistage/core';
import { afterEach, describe, expect, it } from 'vitest';
import { modelIdsOf } from '../src/vllm/attach.js';
import {
  OpenAiCompletionsConnection,
  completionPromptFromInput,
  completionRequestBody,
} from '../src/vllm/openai-completions-connection.js';
import { sseData } from '../src/vllm/sse.js';
import { rejection } from './vllm-fixture.js';

async function* chunksOf(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield new TextEncoder().encode(p);
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('sseData', () => {
  it('yields the data of each event, across chunk boundaries, with \\n or \\r\\n line ends', async () => {
    const events = await all(
      sseData(chunksOf('data: {"a":', '1}\n\nda', 'ta: x\r\n\r\n: a comment\n\nevent: ping\nid: 3\ndata: [DONE]\n\n')),
    );
    expect(events).toEqual(['{"a":1}', 'x', '[DONE]']);
  });

  it('joins multi-line data, keeps data without a space, and yields an event cut off by the end', async () => {
    expect(await all(sseData(chunksOf('data: one\ndata:two\n\ndata: tail')))).toEqual(['one\ntwo', 'tail']);
    expect(await all(sseData(chunksOf('\n\n\n')))).toEqual([]);
  });

  it('decodes UTF-8 split inside a character', async () => {
    const bytes = new TextEncoder().encode('data: héllo ✓\n\n');
    async function* split(): AsyncGenerator<Uint8Array> {
      yield bytes.slice(0, 8);
      yield bytes.slice(8, 15);
      yield bytes.slice(15);
    }
    expect(await all(sseData(split()))).toEqual(['héllo ✓']);
  });
});

describe('completionRequestBody / completionPromptFromInput / modelIdsOf', () => {
  it('maps vLLM sampling params onto the completions request', () => {
    const body = completionRequestBody('m', 'hi', {
      max_tokens: 4,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 20,
      min_p: 0.05,
      seed: 1,
      stop: ['\n'],
      stop_token_ids: [2],
      repetition_penalty: 1.1,
      presence_penalty: 0,
      frequency_penalty: 0.5,
      ignore_eos: true,
      min_tokens: 1,
      logprobs: 2,
      extra_args: { foo: 1 },
      guided_decoding: { regex: '[a-z]+' },
      output_kind: 'DELTA',
      detokenize: true,
      stream_interval: 4,
      skip_clone: true,
      output_text_buffer_length: 0,
      flat_logprobs: false,
      bad_words: null,
      model: 'sneaky',
      prompt: 'sneaky',
      stream: false,
    });
    expect(body).toEqual({
      model: 'm',
      prompt: 'hi',
      stream: true,
      stream_options: { include_usage: true },
      return_token_ids: true,
      max_tokens: 4,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 20,
      min_p: 0.05,
      seed: 1,
      stop: ['\n'],
      stop_token_ids: [2],
      repetition_penalty: 1.1,
      presence_penalty: 0,
      frequency_penalty: 0.5,
      ignore_eos: true,
      min_tokens: 1,
      logprobs: 2,
      vllm_xargs: { foo: 1 },
      structured_outputs: { regex: '[a-z]+' },
    });
  });

  it('takes a prompt from strings, token ids and upstream outputs', () => {
    expect(completionPromptFromInput('hi')).toBe('hi');
    expect(completionPromptFromInput([1, 2])).toEqual([1, 2]);
    expect(completionPromptFromInput({ kind: 'final', text: 'up', token_ids: [5] })).toBe('up');
    expect(completionPromptFromInput({ prompt: 'p' })).toBe('p');
    expect(completionPromptFromInput({ token_ids: [7, 8] })).toEqual([7, 8]);
    expect(completionPromptFromInput({ tensor: {} })).toBeUndefined();
    expect(completionPromptFromInput([])).toBeUndefined();
    expect(completionPromptFromInput(null)).toBeUndefined();
  });

  it('reads model ids from /v1/models', () => {
    expect(modelIdsOf({ object: 'list', data: [{ id: 'a' }, { id: 'b' }, { nope: 1 }] })).toEqual(['a', 'b']);
    expect(modelIdsOf({})).toEqual([]);
    expect(modelIdsOf(null)).toEqual([]);
  });
});

type Handler = (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>) => void | Promise<void>;

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A scripted server; returns a connection to it (stage 2 replica 1) and the bodies it received. */
async function scripted(handler: Handler) {
  const bodies: Record<string, unknown>[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
      bodies.push(body);
      void handler(req, res, body);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const conn = new OpenAiCompletionsConnection({
    baseUrl: `http://127.0.0.1:${port}`,
    model: 'm',
    modelIds: ['m'],
    stageId: 2,
    replicaId: 1,
    defaultSamplingParams: { max_tokens: 3, temperature: 0 },
  });
  return { conn, bodies, port, server };
}

const sse = (res: ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
};
const event = (choices: unknown[]): string =>
  `data: ${JSON.stringify({ id: 'c', object: 'text_completion', choices })}\n\n`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('OpenAiCompletionsConnection', () => {
  it('POSTs /v1/completions with stage defaults under the request params, and streams chunks', async () => {
    const { conn, bodies } = await scripted(async (req, res) => {
      expect(req.url).toBe('/v1/completions');
      expect(req.headers['content-type']).toBe('application/json');
      sse(res);
      res.write(event([{ index: 0, text: ' a', token_ids: [10], finish_reason: null }]));
      await sleep(5);
      // Several tokens in one event (vLLM may coalesce), and an empty keep-alive-like delta.
      res.write(event([{ index: 0, text: ' b c', token_ids: [11, 12], finish_reason: null }]));
      res.write(event([{ index: 0, text: '', finish_reason: null }]));
      res.write(event([{ index: 0, text: ' d', token_ids: [13], finish_reason: 'stop' }]));
      res.write(`data: ${JSON.stringify({ id: 'c', choices: [], usage: { completion_tokens: 4 } })}\n\n`);
      res.end('data: [DONE]\n\n');
    });
    expect(conn.info).toMatchObject({ engine: 'vllm', model: 'm', models: ['m'] });
    const chunks = await all(conn.request({ request_id: 'q', input: 'hi', params: { temperature: 0.5 } }));
    expect(bodies[0]).toEqual({
      model: 'm',
      prompt: 'hi',
      stream: true,
      stream_options: { include_usage: true },
      return_token_ids: true,
      max_tokens: 3,
      temperature: 0.5,
    });
    expect(chunks).toEqual<ReplicaOutputChunk[]>([
      { request_id: 'q', seq: 0, done: false, data: { kind: 'token', index: 0, token_id: 10, text: ' a' } },
      {
        request_id: 'q',
        seq: 1,
        done: false,
        data: { kind: 'token', index: 1, token_id: null, token_ids: [11, 12], text: ' b c' },
      },
      { request_id: 'q', seq: 2, done: false, data: { kind: 'token', index: 3, token_id: 13, text: ' d' } },
      {
        request_id: 'q',
        seq: 3,
        done: true,
        data: { kind: 'final', text: ' a b c d', token_ids: [10, 11, 12, 13], finish_reason: 'stop' },
      },
    ]);
  });

  it('without token ids from the server: token_id null, final token_ids null', async () => {
    const { conn } = await scripted((_req, res) => {
      sse(res);
      res.write(event([{ index: 0, text: ' x', finish_reason: null }]));
      res.write(event([{ index: 0, text: ' y', finish_reason: 'length' }]));
      res.end('data: [DONE]\n\n');
    });
    const chunks = await all(conn.request({ request_id: 'q', input: 'hi', params: {} }));
    expect(chunks.map((c) => c.data)).toEqual([
      { kind: 'token', index: 0, token_id: null, text: ' x' },
      { kind: 'token', index: 1, token_id: null, text: ' y' },
      { kind: 'final', text: ' x y', token_ids: null, finish_reason: 'length' },
    ]);
  });

  it('HTTP errors: OMNI_REQUEST_FAILED with stage, replica, status and a body excerpt', async () => {
    const { conn } = await scripted((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`Internal Server Error ${'x'.repeat(1000)}`);
    });
    const err = await rejection(all(conn.request({ request_id: 'q', input: 'hi', params: {} })));
    expect(err.code).toBe('OMNI_REQUEST_FAILED');
    expect(err.message).toMatch(
      /^stage 2 replica 1 failed request q: POST http:\/\/127\.0\.0\.1:\d+\/v1\/completions answered HTTP 500: Internal Server Error x+…$/,
    );
    expect(err.message.length).toBeLessThan(500);
    expect(err.context).toMatchObject({ stage_id: 2, replica_id: 1, request_id: 'q', status: 500 });
    expect(err.hint).toContain('log lines');
  });

  it('an error event in the stream (vLLM’s old and new shapes) fails the request', async () => {
    for (const payload of [
      { object: 'error', message: 'engine dead', type: 'InternalServerError', code: 500 },
      { error: { message: 'engine dead', type: 'InternalServerError', code: 500 } },
    ]) {
      const { conn } = await scripted((_req, res) => {
        sse(res);
        res.write(event([{ index: 0, text: ' a', finish_reason: null }]));
        res.write(`data: ${JSON.stringify(payload)}\n\n`);
        res.end('data: [DONE]\n\n');
      });
      const got: ReplicaOutputChunk[] = [];
      const err = await rejection(
        (async () => {
          for await (const c of conn.request({ request_id: 'q', input: 'hi', params: {} })) got.push(c);
        })(),
      );
      expect(got).toHaveLength(1);
      expect(err.code).toBe('OMNI_REQUEST_FAILED');
      expect(err.message).toContain('the stream reported an error: engine dead');
    }
  });

  it('a stream that ends before [DONE] or is cut off fails the request', async () => {
    const ended = await scripted((_req, res) => {
      sse(res);
      res.end(event([{ index: 0, text: ' a', finish_reason: null }]));
    });
    const e1 = await rejection(all(ended.conn.request({ request_id: 'q', input: 'hi', params: {} })));
    expect([e1.code, e1.message]).toEqual(['OMNI_REQUEST_FAILED', expect.stringContaining('ended before [DONE]')]);

    const cut = await scripted((_req, res) => {
      sse(res);
      res.write(event([{ index: 0, text: ' a', finish_reason: null }]));
      setTimeout(() => res.destroy(), 20);
    });
    const e2 = await rejection(all(cut.conn.request({ request_id: 'q', input: 'hi', params: {} })));
    expect([e2.code, e2.message]).toEqual(['OMNI_REQUEST_FAILED', expect.stringContaining('broke off')]);
  });

  it('a replica that does not answer: OMNI_REQUEST_FAILED naming the connect error', async () => {
    const { conn, server } = await scripted(() => undefined);
    servers.splice(servers.indexOf(server), 1);
    await new Promise((r) => server.close(r));
    const err = await rejection(all(conn.request({ request_id: 'q', input: 'hi', params: {} })));
    expect(err.code).toBe('OMNI_REQUEST_FAILED');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('refuses inputs without a prompt and n > 1 before sending anything', async () => {
    const { conn, bodies } = await scripted((_req, res) => {
      res.end();
    });
    expect(
      (await rejection(all(conn.request({ request_id: 'q', input: { tensor: 1 }, params: {} })))).message,
    ).toContain('cannot make a completion prompt');
    expect((await rejection(all(conn.request({ request_id: 'q', input: 'hi', params: { n: 2 } })))).message).toContain(
      'n=2',
    );
    expect(bodies).toHaveLength(0);
  });

  it('close() fails requests in flight with OMNI_WORKER_EXITED and refuses new ones; shutdown() resolves', async () => {
    const { conn } = await scripted((_req, res) => {
      sse(res);
      res.write(event([{ index: 0, text: ' a', finish_reason: null }])); // then nothing more
    });
    const got: ReplicaOutputChunk[] = [];
    const pending = rejection(
      (async () => {
        for await (const c of conn.request({ request_id: 'q', input: 'hi', params: {} })) {
          got.push(c);
          conn.close();
        }
      })(),
    );
    const err = await pending;
    expect(got).toHaveLength(1);
    expect(err.code).toBe('OMNI_WORKER_EXITED');
    expect((await rejection(all(conn.request({ request_id: 'r', input: 'hi', params: {} })))).code).toBe(
      'OMNI_WORKER_EXITED',
    );
    await expect(conn.shutdown()).resolves.toBeUndefined();
  });

  it('aborting while waiting for the response headers cancels the request', async () => {
    let closed = false;
    const ctrl = new AbortController();
    const { conn } = await scripted((_req, res) => {
      // The request arrived; it never answers, and the client gives up.
      res.on('close', () => (closed = true));
      setTimeout(() => ctrl.abort(), 20);
    });
    const err = await rejection(all(conn.request({ request_id: 'slow', input: 'hi', params: {} }, ctrl.signal)));
    expect(err.code).toBe('OMNI_CANCELLED');
    expect(err.message).toBe('request slow was aborted');
    for (let i = 0; i < 50 && !closed; i++) await sleep(10);
    expect(closed).toBe(true);
  });
});
