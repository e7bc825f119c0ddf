import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplicaOutputChunk } from '../../src/hooks/replica-handles.js';
import { bringUpFixture, releaseAll, type UpPipeline } from './router-helpers.js';

const step = (i: number, tokenId: number) => ({ kind: 'token', index: i, token_id: tokenId, text: `t${tokenId}` });

describe('the reference llm engine reads a streamed input causally', () => {
  let up: UpPipeline;
  beforeAll(async () => {
    up = await bringUpFixture('talker.yaml');
  }, 60_000);
  afterAll(() => releaseAll(), 30_000);

  /** Streams `ids` to the talker as thinker steps over the control protocol; its token ids. */
  async function talk(requestId: string, ids: number[], onOutput?: (c: ReplicaOutputChunk) => void) {
    const connection = up.pipeline.liveReplicas(0)[0]!.connection!;
    let firstOutput!: () => void;
    const gotFirst = new Promise<void>((resolve) => (firstOutput = resolve));
    async function* rest() {
      // The second chunk goes only after the talker answered the first: it cannot have read ahead.
      await gotFirst;
      for (let i = 1; i < ids.length; i++) yield step(i, ids[i]!);
    }
    let last: unknown = null;
    for await (const c of connection.request({
      request_id: requestId,
      input: step(0, ids[0]!),
      params: {},
      inputStream: rest(),
    })) {
      onOutput?.(c);
      firstOutput();
      last = c.data;
    }
    return (last as { token_ids: number[] }).token_ids;
  }

  it('answers the first chunk before the rest exists, and a later chunk changes only later output', async () => {
    const a = [11, 42, 7, 99, 23, 5, 61, 34, 18, 77, 3, 56];
    const b = [...a];
    b[6] = 60; // a different thinker step 6
    const seq: number[] = [];
    const outA = await talk('causal-a', a, (c) => seq.push(c.seq));
    const outB = await talk('causal-b', b);
    expect(seq[0]).toBe(0);
    expect(outA.length).toBeGreaterThan(8);
    expect(outB.slice(0, 6), 'tokens before the changed chunk are the same').toEqual(outA.slice(0, 6));
    expect(outB.slice(6), 'later tokens follow the changed chunk').not.toEqual(outA.slice(6));

    // The whole input at once (an ordinary request with the same units) gives the same tokens.
    const connection = up.pipeline.liveReplicas(0)[0]!.connection!;
    let whole: unknown = null;
    for await (const c of connection.request({ request_id: 'causal-w', input: { token_ids: a }, params: {} }))
      whole = c.data;
    expect((whole as { token_ids: number[] }).token_ids).toEqual(outA);
  }, 60_000);
});
