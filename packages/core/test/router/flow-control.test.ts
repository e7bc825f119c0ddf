import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OmnistagePlugin } from '../../src/plugin.js';
import type { PipelineOutput } from '../../src/orchestrate/router.js';
import { bringUpFixture, referenceLlmPlugin, releaseAll, ROUTER_FIXTURES, type UpPipeline } from './router-helpers.js';

/** The flood engine (fixtures/flood-worker.mjs) and a chunk processor of a plugin that passes chunks on. */
const floodPlugin = (seen: string[]): OmnistagePlugin => ({
  name: 'flood-test',
  apply(omni) {
    omni.defineEngine({
      stageType: 'llm',
      name: 'flood',
      streamsInput: true,
      resolveWorker: () => ({
        command: process.execPath,
        args: [join(ROUTER_FIXTURES, 'flood-worker.mjs')],
        env: {},
        attach: 'control',
      }),
    });
    omni.defineChunkProcessor({
      name: 'flood_async_chunk',
      create: (ctx) => {
        seen.push(`${ctx.request_id}:${ctx.from.stage_id}->${ctx.to.stage_id}`);
        return { chunk: (data) => [data], end: () => [] };
      },
    });
  },
});

describe('flow control on a streaming edge (a consumer that stalls, a producer that floods)', () => {
  let up: UpPipeline;
  const created: string[] = [];
  beforeAll(async () => {
    up = await bringUpFixture('flood.yaml', { plugins: [await referenceLlmPlugin(), floodPlugin(created)] });
  }, 60_000);
  afterAll(() => releaseAll(), 30_000);

  it("uses the plugin's chunk processor, holds the producer back, and loses nothing", async () => {
    expect(up.plan.transfers[0]!.streaming?.processor).toBe('flood_async_chunk');
    const outs: PipelineOutput[] = [];
    let producerChunks = 0;
    for await (const o of up.router.generate('go', { requestId: 'flood-1', params: { 0: { count: 2000 } } })) {
      if (o.stage_id === 0 && o.kind === 'chunk') producerChunks++;
      else outs.push(o);
    }
    expect(created).toEqual(['flood-1:0->1']);
    const producer = outs.find((o) => o.stage_id === 0 && o.kind === 'final')!.data as Record<string, unknown>;
    const consumer = outs.find((o) => o.stage_id === 1 && o.kind === 'final')!.data as Record<string, unknown>;
    expect(consumer).toEqual({ count: 2000, in_order: true, streamed: true });
    expect(producerChunks).toBe(2000);
    // While the consumer stalled, the producer ran out of credit: a slow consumer slowed it.
    expect(producer['count']).toBe(2000);
    expect(producer['waited'] as number).toBeGreaterThan(0);
  }, 60_000);
});
