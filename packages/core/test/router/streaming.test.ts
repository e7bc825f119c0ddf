import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineOutput } from '../../src/orchestrate/router.js';
import { planToJson, planToTable } from '../../src/orchestrate/plan-json.js';
import { bringUpFixture, releaseAll, type UpPipeline } from './router-helpers.js';

async function collect(stream: AsyncIterable<PipelineOutput>): Promise<PipelineOutput[]> {
  const out: PipelineOutput[] = [];
  for await (const o of stream) out.push(o);
  return out;
}

type Data = Record<string, unknown>;
const dataOf = (o: PipelineOutput): Data => o.data as Data;
const isAudioChunk = (o: PipelineOutput): boolean => o.stage_id === 2 && dataOf(o)['kind'] === 'audio_chunk';
/** The PCM bytes of every audio chunk of code2wav, in order. */
const pcmOf = (outs: PipelineOutput[]): Buffer =>
  Buffer.concat(outs.filter(isAudioChunk).map((o) => Buffer.from(dataOf(o)['data_base64'] as string, 'base64')));
const finalOf = (outs: PipelineOutput[], stageId: number): Data =>
  dataOf(outs.find((o) => o.kind === 'final' && o.stage_id === stageId)!);

describe('router: streaming edges (async_chunk: true, thinker -> talker -> code2wav)', () => {
  let on: UpPipeline;
  let off: UpPipeline;
  beforeAll(async () => {
    [on, off] = await Promise.all([bringUpFixture('streaming.yaml'), bringUpFixture('streaming-off.yaml')]);
  }, 90_000);
  afterAll(() => releaseAll(), 30_000);

  it('plans the two edges as streaming with their processors only when async_chunk is true', () => {
    expect(on.plan.transfers.map((t) => [t.from, t.to, t.streaming?.processor])).toEqual([
      [0, 1, 'thinker2talker_async_chunk'],
      [1, 2, 'talker2code2wav_async_chunk'],
    ]);
    expect(on.plan.transfers[1]!.streaming!.options).toMatchObject({
      codec_chunk_frames: 6,
      initial_codec_chunk_frames: 4,
    });
    expect(off.plan.transfers.every((t) => t.streaming === undefined)).toBe(true);
    // `plan` shows it per edge, `plan --json` too.
    expect(planToTable(on.plan)).toMatch(/^0 -> 1 +- +chunks \(thinker2talker_async_chunk\) /m);
    expect(planToTable(off.plan)).toMatch(/^1 -> 2 +\S+ +no +/m);
    const json = JSON.parse(JSON.stringify(planToJson(on.plan))) as { transfers: Record<string, unknown>[] };
    expect(json.transfers[1]!['streaming']).toEqual({
      processor: 'talker2code2wav_async_chunk',
      options: { codec_chunk_frames: 6, initial_codec_chunk_frames: 4 },
    });
  });

  it('speaks before the thinker finished, in windows, and gives the same audio as without streaming', async () => {
    const input = 'tell me about the lighthouse keeper';
    const [streamed, whole] = await Promise.all([
      collect(on.router.generate(input, { requestId: 'stream-1' })),
      collect(off.router.generate(input, { requestId: 'whole-1' })),
    ]);
    const thinkerTokens = (finalOf(streamed, 0)['token_ids'] as number[]).length;
    expect(thinkerTokens, 'the thinker wrote enough tokens for the check to mean something').toBeGreaterThan(8);

    const firstAudio = streamed.findIndex(isAudioChunk);
    const thinkerDone = streamed.findIndex((o) => o.kind === 'final' && o.stage_id === 0);
    expect(firstAudio, 'audio came').toBeGreaterThanOrEqual(0);
    expect(firstAudio, 'the first audio came while the thinker was still writing').toBeLessThan(thinkerDone);
    // The first window is initial_codec_chunk_frames (4) codec frames: 4 tones of 40 ms at 16 kHz.
    const first = Buffer.from(dataOf(streamed[firstAudio]!)['data_base64'] as string, 'base64');
    expect(first.length).toBe(4 * 640 * 2);

    // Without streaming nothing of code2wav comes before the talker's final output.
    const wholeFirstAudio = whole.findIndex(isAudioChunk);
    expect(wholeFirstAudio).toBeGreaterThan(whole.findIndex((o) => o.kind === 'final' && o.stage_id === 0));

    expect(finalOf(streamed, 0)['text']).toBe(finalOf(whole, 0)['text']);
    expect(finalOf(streamed, 2)['token_ids']).toEqual(finalOf(whole, 2)['token_ids']);
    expect(pcmOf(streamed).length).toBeGreaterThan(0);
    expect(pcmOf(streamed).equals(pcmOf(whole)), 'the same audio bytes either way').toBe(true);
    expect(finalOf(streamed, 2)['data_base64']).toBe(finalOf(whole, 2)['data_base64']);
    expect(streamed.filter(isAudioChunk).length, 'several windows').toBeGreaterThan(1);

    // The talker was dispatched before the thinker's request ended.
    const events = on.events.filter((e) => 'request_id' in e && e.request_id === 'stream-1');
    const talkerDispatched = events.findIndex((e) => e.type === 'request:dispatched' && e.stage_id === 1);
    const thinkerEnded = events.findIndex((e) => e.type === 'request:stage_end' && e.stage_id === 0);
    expect(talkerDispatched).toBeGreaterThanOrEqual(0);
    expect(talkerDispatched).toBeLessThan(thinkerEnded);
  }, 60_000);
});
