/**
 * `omnistage serve` under faults and shutdown: a client that disconnects mid-stream, a full
 * --max-inflight (429), --request-timeout (504), and SIGTERM with 20 streams in flight (all finish,
 * new requests get 503, exit 0, nothing left). Waits on responses and events, never on sleeps.
 */
import { existsSync, readdirSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createSandbox,
  replicaPids,
  requireBuiltCli,
  runCleanups,
  waitAllDead,
  waitFor,
  type OmniEventLine,
} from './helpers.js';
import { SERVE_EXAMPLE, parsePrometheus, postJson, sseEvents, startServe } from './serve-helpers.js';

// code2wav (stage 1) takes 40 ms a token; asking it for 100 tokens keeps a request there ~4 s.
const SLOW_AUDIO = ['--stage-overrides', JSON.stringify({ 1: { token_delay_ms: 40 } })];
const LONG_AUDIO_REQUEST = {
  messages: [{ role: 'user', content: 'tell me a long story' }],
  modalities: ['text', 'audio'],
  sampling_params_list: [null, { max_tokens: 100 }],
};
const DRAIN_REQUEST = { ...LONG_AUDIO_REQUEST, sampling_params_list: [null, { max_tokens: 300 }] };

interface StreamResult {
  events: unknown[];
  done: boolean;
}

/** Reads one SSE answer to the end; `first` resolves at its first event. */
function readStream(res: Response): { first: Promise<void>; result: Promise<StreamResult> } {
  let markFirst: () => void = () => {};
  const first = new Promise<void>((resolve) => (markFirst = resolve));
  const result = (async () => {
    const events: unknown[] = [];
    let done = false;
    for await (const data of sseEvents(res)) {
      markFirst();
      if (data === '[DONE]') done = true;
      else events.push(JSON.parse(data));
    }
    return { events, done };
  })();
  return { first, result };
}

function shmFilesOf(runId: string): string[] {
  return existsSync('/dev/shm') ? readdirSync('/dev/shm').filter((n) => n.startsWith(`omnistage-${runId}-`)) : [];
}

const ofRequest = (events: OmniEventLine[], requestId: string, type: string): OmniEventLine[] =>
  events.filter((e) => e.type === type && e['request_id'] === requestId);

describe('omnistage serve: faults and shutdown', () => {
  beforeAll(() => requireBuiltCli());
  afterEach(async () => runCleanups(), 60_000);

  it('a client that disconnects mid-stream: its request is aborted in every stage it reached and its payloads are freed', async () => {
    const box = await createSandbox();
    const { cli, url } = await startServe(box, SERVE_EXAMPLE, [
      ...SLOW_AUDIO,
      '--events',
      box.eventsFile('disconnect'),
    ]);
    const abort = new AbortController();
    const res = await postJson(
      `${url}/v1/chat/completions`,
      { ...LONG_AUDIO_REQUEST, modalities: ['text', 'audio', 'image'], stream: true },
      {},
      abort.signal,
    );
    expect(res.status).toBe(200);
    let requestId = '';
    // Read until the text choice finished: stage 0 is done, its latent was handed to stages 1 and 2.
    for await (const data of sseEvents(res)) {
      const chunk = JSON.parse(data) as { id: string; choices: { index: number; finish_reason: string | null }[] };
      requestId = chunk.id.replace(/^chatcmpl-/, '');
      if (chunk.choices[0]!.index === 0 && chunk.choices[0]!.finish_reason !== null) break;
    }
    await cli.waitForEvent(
      (e) => e.type === 'request:dispatched' && e['request_id'] === requestId && e['stage_id'] === 1,
    );
    abort.abort();

    const aborted = await cli.waitForEvent(
      (e) => e.type === 'request:stage_end' && e['request_id'] === requestId && e['stage_id'] === 1,
    );
    expect(aborted['outcome']).toBe('aborted');
    const events = cli.events();
    // Every stage the request reached ended there (done before the disconnect, or aborted).
    const dispatched = ofRequest(events, requestId, 'request:dispatched').map((e) => e['stage_id']);
    expect(dispatched).toEqual(expect.arrayContaining([0, 1]));
    await waitFor(() => ofRequest(cli.events(), requestId, 'request:stage_end').length === dispatched.length, 10_000);
    const ends = ofRequest(cli.events(), requestId, 'request:stage_end');
    expect(ends.map((e) => e['stage_id']).sort()).toEqual([...dispatched].sort());
    expect(ends.find((e) => e['stage_id'] === 0)!['outcome']).toBe('done');
    // The thinker's latent went through /dev/shm; the aborted request's file is freed.
    const stored = ofRequest(events, requestId, 'payload:stored');
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ via: 'shm', stage_id: 0 });
    const key = stored[0]!['key'];
    await cli.waitForEvent((e) => e.type === 'payload:freed' && e['key'] === key, 10_000);
    expect(shmFilesOf(String(aborted.run_id)).filter((f) => f.includes(String(key)))).toEqual([]);

    // The server counts the disconnect (499) and frees its --max-inflight slot.
    const metrics = parsePrometheus(await (await fetch(`${url}/metrics`)).text());
    expect(metrics.get('omnistage_http_requests_total{endpoint="/v1/chat/completions",status="499"}')).toBe(1);
    expect(metrics.get('omnistage_requests_in_flight')).toBe(0);
    expect(metrics.get('omnistage_stage_duration_seconds_count{stage_id="1",outcome="aborted"}')).toBe(1);
    cli.signal('SIGTERM');
    expect(await cli.waitExit(30_000)).toEqual({ code: 0, signal: null });
  }, 120_000);

  it('--request-timeout: a request past it is aborted in every stage and answered 504; the server keeps serving', async () => {
    const box = await createSandbox();
    const { cli, url } = await startServe(box, SERVE_EXAMPLE, [
      ...SLOW_AUDIO,
      '--request-timeout',
      '1',
      '--events',
      box.eventsFile('timeout'),
    ]);
    const res = await postJson(`${url}/v1/chat/completions`, LONG_AUDIO_REQUEST);
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({
      error: {
        code: 'OMNI_REQUEST_TIMEOUT',
        type: 'timeout',
        message: expect.stringMatching(
          /--request-timeout \(1 s\) waiting on stage 1 replica 0 \(pid \d+\); it was aborted in every stage/,
        ),
      },
    });
    const end = await cli.waitForEvent((e) => e.type === 'request:stage_end' && e['stage_id'] === 1);
    expect(end['outcome']).toBe('aborted');
    const quick = await postJson(`${url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      modalities: ['text'],
    });
    expect(quick.status).toBe(200);
    cli.signal('SIGTERM');
    expect(await cli.waitExit(30_000)).toEqual({ code: 0, signal: null });
  }, 120_000);

  it('SIGTERM with 20 streams in flight: all 20 finish, a 21st got 429, new requests get 503, exit 0, nothing left running or in /dev/shm', async () => {
    const box = await createSandbox();
    const { cli, url } = await startServe(box, SERVE_EXAMPLE, [
      ...SLOW_AUDIO,
      '--max-inflight',
      '20',
      '--events',
      box.eventsFile('drain'),
    ]);
    const streams = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        // 300 tokens at 40 ms: no stream can finish (and free its slot) before the 21st request
        // below, however slowly a loaded machine delivers the 20 first chunks.
        const res = await postJson(`${url}/v1/chat/completions`, {
          ...DRAIN_REQUEST,
          messages: [{ role: 'user', content: `story ${i}` }],
          stream: true,
        });
        expect(res.status).toBe(200);
        return readStream(res);
      }),
    );
    await Promise.all(streams.map((s) => s.first));

    const overflow = await postJson(`${url}/v1/chat/completions`, LONG_AUDIO_REQUEST);
    expect(overflow.status).toBe(429);
    expect(overflow.headers.get('retry-after')).toBe('1');
    expect(await overflow.json()).toMatchObject({ error: { code: 'OMNI_HTTP_OVERLOADED', type: 'rate_limit_error' } });

    cli.signal('SIGTERM');
    expect(await waitFor(() => cli.stderr().includes('received SIGTERM: draining'), 10_000)).toBe(true);
    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'draining' });
    const late = await postJson(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'too late' }] });
    expect(late.status).toBe(503);
    expect(await late.json()).toMatchObject({
      error: { code: 'OMNI_HTTP_UNAVAILABLE', message: expect.stringContaining('draining') },
    });

    for (const { result } of streams) {
      const r = await result;
      expect(r.done).toBe(true);
      const choices = r.events.flatMap(
        (e) =>
          (e as { choices: { index: number; delta: { audio?: { data: string } }; finish_reason: string | null }[] })
            .choices,
      );
      expect(
        choices
          .filter((c) => c.finish_reason !== null)
          .map((c) => c.index)
          .sort(),
      ).toEqual([0, 1]);
      const audio = choices.find((c) => c.delta.audio)!.delta.audio!.data;
      expect(Buffer.from(audio, 'base64').subarray(0, 4).toString('latin1')).toBe('RIFF');
    }
    expect(await cli.waitExit(60_000)).toEqual({ code: 0, signal: null });

    const events = cli.events();
    expect(
      events.filter((e) => e.type === 'request:stage_end' && e['stage_id'] === 1).map((e) => e['outcome']),
    ).toEqual(Array(20).fill('done'));
    expect(events.at(-1)?.type).toBe('pipeline:stopped');
    const pids = replicaPids(events);
    expect(await waitAllDead(pids, 10_000)).not.toBeNull();
    expect(readdirSync(box.tmp)).toEqual([]);
    expect(shmFilesOf(String(events[0]!.run_id))).toEqual([]);
    expect(cli.stderr()).toContain('drained and stopped');
  }, 180_000);
});
