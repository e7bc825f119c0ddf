import { describe, expect, it } from 'vitest';
import type { StageConfig } from '../../src/config/types.js';
import { isOmniError } from '../../src/errors.js';
import { talker2code2wavAsyncChunk, thinker2talkerAsyncChunk } from '../../src/orchestrate/builtin-chunk-processors.js';
import { parseOrchestratorMessage, parseWorkerMessage } from '../../src/control/protocol.js';

const stage = (id: number) => ({ stage_id: id }) as StageConfig;
const ctx = (options: Record<string, unknown>, params: Record<string, unknown> = {}) => ({
  request_id: 'r1',
  from: stage(1),
  to: stage(2),
  options,
  params,
});
const step = (id: number) => ({ kind: 'token', token_id: id, text: `t${id}` });

describe("core's chunk processors (upstream semantics)", () => {
  it('thinker2talker_async_chunk forwards every step and does not repeat the final output', () => {
    const p = thinker2talkerAsyncChunk.create(ctx({}));
    expect(p.chunk(step(5))).toEqual([step(5)]);
    expect(p.end({ kind: 'final', token_ids: [5] })).toEqual([]);
  });

  it('talker2code2wav_async_chunk sends a first window of initial_codec_chunk_frames, then codec_chunk_frames, the rest at the end', () => {
    const p = talker2code2wavAsyncChunk.create(ctx({ codec_chunk_frames: 3, initial_codec_chunk_frames: 2 }));
    const sent = [1, 2, 3, 4, 5, 6, 7].flatMap((id) => p.chunk(step(id)));
    expect(sent).toEqual([
      { kind: 'codes', index: 0, token_ids: [1, 2] },
      { kind: 'codes', index: 1, token_ids: [3, 4, 5] },
    ]);
    // The final output repeats every frame: only the one no step carried (8) is new.
    expect(p.end({ kind: 'final', token_ids: [1, 2, 3, 4, 5, 6, 7, 8] })).toEqual([
      { kind: 'codes', index: 2, token_ids: [6, 7, 8] },
    ]);
  });

  it("a request's initial_codec_chunk_frames wins over the edge's; a bad one is OMNI_USAGE naming the stage", () => {
    const p = talker2code2wavAsyncChunk.create(ctx({ codec_chunk_frames: 25 }, { initial_codec_chunk_frames: 1 }));
    expect(p.chunk(step(9))).toEqual([{ kind: 'codes', index: 0, token_ids: [9] }]);
    expect(p.chunk(step(10))).toEqual([]);
    let error: unknown = null;
    try {
      talker2code2wavAsyncChunk.create(ctx({}, { initial_codec_chunk_frames: 0 }));
    } catch (err) {
      error = err;
    }
    expect(isOmniError(error) && error.code).toBe('OMNI_USAGE');
    expect((error as Error).message).toMatch(/initial_codec_chunk_frames is 0 in the request's params of stage 2/);
  });
});

describe('the stream messages of the control protocol', () => {
  it('accepts input, input_end, credit and a streamed request; input_ack from a worker', () => {
    for (const m of [
      { type: 'request', request_id: 'a', input: 1, params: {}, streamed: true, input_window: 16, output_window: 16 },
      { type: 'input', request_id: 'a', seq: 1, data: { x: 1 } },
      { type: 'input_end', request_id: 'a' },
      { type: 'credit', request_id: 'a', n: 4 },
    ])
      expect(parseOrchestratorMessage(JSON.stringify(m))).toEqual(m);
    expect(parseWorkerMessage('{"type":"input_ack","request_id":"a","seq":3}')).toEqual({
      type: 'input_ack',
      request_id: 'a',
      seq: 3,
    });
  });

  it('refuses malformed ones with OMNI_PROTOCOL saying which field', () => {
    const bad: [string, RegExp][] = [
      ['{"type":"credit","request_id":"a","n":0}', /n must be a positive integer/],
      ['{"type":"input","request_id":"a","seq":1}', /data is required/],
      ['{"type":"request","request_id":"a","input":1,"params":{},"streamed":"yes"}', /streamed must be a boolean/],
      ['{"type":"request","request_id":"a","input":1,"params":{},"output_window":-1}', /output_window must be/],
    ];
    for (const [line, why] of bad) expect(() => parseOrchestratorMessage(line)).toThrow(why);
    expect(() => parseWorkerMessage('{"type":"input_ack","request_id":"a"}')).toThrow(/seq must be an integer/);
  });
});
