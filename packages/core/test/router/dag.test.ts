import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { isOmniError, type OmniError } from '../../src/errors.js';
import { Omnistage } from '../../src/omnistage.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import type { PipelineOutput } from '../../src/orchestrate/router.js';
import {
  bringUpFixture,
  fixtureLine,
  referenceLlmPlugin,
  releaseAll,
  ROUTER_FIXTURES,
  textOf,
  type UpPipeline,
} from './router-helpers.js';

interface ProcessorCall {
  sources: { stage_id: number; replica_id: number; data: unknown }[];
  ctx: { stage: { stage_id: number }; userInput: unknown; request_id: string };
  returned: string;
}
const g = globalThis as { __omnistageRouterProcessorCalls?: ProcessorCall[] };

async function collect(stream: AsyncIterable<PipelineOutput>): Promise<PipelineOutput[]> {
  const out: PipelineOutput[] = [];
  for await (const o of stream) out.push(o);
  return out;
}

const finalOf = (outs: PipelineOutput[], stageId: number): PipelineOutput => {
  const f = outs.filter((o) => o.kind === 'final' && o.stage_id === stageId);
  expect(f, `one final output of stage ${stageId}`).toHaveLength(1);
  return f[0]!;
};

describe('router: the engine_input_source DAG (diamond 0 -> 1, 0 -> 2, [1, 2] -> 3)', () => {
  let up: UpPipeline;
  beforeAll(async () => {
    g.__omnistageRouterProcessorCalls = [];
    up = await bringUpFixture('diamond.yaml');
  }, 60_000);
  afterAll(async () => {
    delete g.__omnistageRouterProcessorCalls;
    await releaseAll();
  }, 30_000);

  it('starts a stage only after all of its sources finished, and streams every final_output stage', async () => {
    const outs = await collect(up.router.generate('a diamond of stages', { requestId: 'dag-1' }));
    expect(new Set(outs.filter((o) => o.kind === 'final').map((o) => o.stage_id))).toEqual(new Set([0, 1, 2, 3]));
    expect(outs.every((o) => o.request_id === 'dag-1' && o.attempt === 0)).toBe(true);

    // Dispatch order: 0 first, 3 last (after both 1 and 2).
    const dispatched = up.events
      .filter((e) => e.type === 'request:dispatched' && e.request_id === 'dag-1')
      .map((e) => (e as { stage_id: number }).stage_id);
    expect(dispatched).toHaveLength(4);
    expect(dispatched[0]).toBe(0);
    expect(dispatched[3]).toBe(3);

    // In the stream, nothing of stage 3 comes before the final outputs of both its sources, and
    // nothing of stages 1/2 before stage 0's final. Stage 1 is the slow one (40 ms a token).
    const pos = (pred: (o: PipelineOutput) => boolean): number => outs.findIndex(pred);
    const firstOf3 = pos((o) => o.stage_id === 3);
    expect(firstOf3).toBeGreaterThan(pos((o) => o.kind === 'final' && o.stage_id === 1));
    expect(firstOf3).toBeGreaterThan(pos((o) => o.kind === 'final' && o.stage_id === 2));
    const firstOf1or2 = pos((o) => o.stage_id === 1 || o.stage_id === 2);
    expect(firstOf1or2).toBeGreaterThan(pos((o) => o.kind === 'final' && o.stage_id === 0));
    // Stage 2 (fast) finished while stage 1 (slow) was still streaming: the wait was real.
    expect(pos((o) => o.kind === 'final' && o.stage_id === 2)).toBeLessThan(
      pos((o) => o.kind === 'final' && o.stage_id === 1),
    );
  }, 30_000);

  it('calls the JS custom_process_input_func (relative to the YAML) with both sources, and the stage receives its return value', async () => {
    g.__omnistageRouterProcessorCalls = [];
    const input = 'the river and the lighthouse';
    const outs = await collect(up.router.generate(input, { requestId: 'dag-2' }));
    const calls = g.__omnistageRouterProcessorCalls;
    expect(calls, 'the processor is called once per request, for stage 3 only').toHaveLength(1);
    const call = calls[0]!;
    // Sources in engine_input_source order, with the data of each source's final output.
    expect(call.sources.map((s) => s.stage_id)).toEqual([1, 2]);
    expect(call.sources[0]!.data).toEqual(finalOf(outs, 1).data);
    expect(call.sources[1]!.data).toEqual(finalOf(outs, 2).data);
    expect(call.ctx.stage.stage_id).toBe(3);
    expect(call.ctx.userInput).toBe(input);
    expect(call.ctx.request_id).toBe('dag-2');
    expect(call.returned).toBe(`[1] ${textOf(finalOf(outs, 1).data)} + [2] ${textOf(finalOf(outs, 2).data)}`);

    // The reference LLM's text is a deterministic function of its prompt; stages 0 and 3 are the
    // same model. Sending the processor's return value as the user input makes stage 0 produce
    // what stage 3 produced iff stage 3 received exactly that value.
    const direct = await collect(up.router.generate(call.returned, { requestId: 'dag-3' }));
    expect(textOf(finalOf(direct, 0).data)).toBe(textOf(finalOf(outs, 3).data));
    // ...and a different prompt gives a different text (the comparison can fail).
    expect(textOf(finalOf(direct, 0).data)).not.toBe(textOf(finalOf(outs, 0).data));
  }, 30_000);

  it('a custom_process_input_func that throws fails the request as OMNI_PLUGIN_FAILED naming it, the stage and the request', async () => {
    const err = await collect(up.router.generate('make the processor throw', { requestId: 'dag-bug' })).then(
      () => null,
      (e: unknown) => e as OmniError,
    );
    expect(err?.code).toBe('OMNI_PLUGIN_FAILED');
    expect(err?.exitCode).toBe(1);
    expect(err?.context).toMatchObject({ stage_id: 3, request_id: 'dag-bug', hook: 'custom_process_input_func' });
    expect(err?.message).toContain('./processors.mjs#join');
    expect(err?.message).toContain('TypeError');
    // The pipeline is still serving.
    expect(finalOf(await collect(up.router.generate('after the bug', { requestId: 'dag-after' })), 3).request_id).toBe(
      'dag-after',
    );
  }, 30_000);

  it('runs concurrent requests through the DAG independently', async () => {
    const inputs = ['first prompt', 'second prompt', 'third prompt'];
    const results = await Promise.all(inputs.map((p, i) => collect(up.router.generate(p, { requestId: `dag-c${i}` }))));
    const again = await Promise.all(inputs.map((p, i) => collect(up.router.generate(p, { requestId: `dag-s${i}` }))));
    for (const [i, outs] of results.entries()) {
      expect(textOf(finalOf(outs, 3).data)).toBe(textOf(finalOf(again[i]!, 3).data));
      expect(outs.every((o) => o.request_id === `dag-c${i}`)).toBe(true);
    }
    expect(new Set(results.map((r) => textOf(finalOf(r, 3).data))).size).toBe(3);
  }, 30_000);
  it('finalStages runs only the wanted final stages and their sources, and each dispatch ends with request:stage_end', async () => {
    const outs = await collect(up.router.generate('only the left branch', { requestId: 'dag-f1', finalStages: [1] }));
    expect(new Set(outs.filter((o) => o.kind === 'final').map((o) => o.stage_id))).toEqual(new Set([0, 1]));
    const ofRequest = up.events.filter((e) => 'request_id' in e && e.request_id === 'dag-f1');
    expect(
      ofRequest.filter((e) => e.type === 'request:dispatched').map((e) => (e as { stage_id: number }).stage_id),
    ).toEqual([0, 1]);
    const ends = ofRequest.filter((e) => e.type === 'request:stage_end') as {
      stage_id: number;
      outcome: string;
      duration_ms: number;
    }[];
    expect(ends.map((e) => [e.stage_id, e.outcome])).toEqual([
      [0, 'done'],
      [1, 'done'],
    ]);
    expect(ends.every((e) => e.duration_ms > 0)).toBe(true);
    expect(() => up.router.generate('x', { finalStages: [7] })).toThrow(/stage 7 is not a final_output stage/);
  }, 30_000);

  it('entryStage: the input goes to that stage as it is, the stages before it never see the request', async () => {
    const outs = await collect(
      up.router.generate('enter at stage 1', { requestId: 'dag-e1', finalStages: [1], entryStage: 1 }),
    );
    expect(outs.filter((o) => o.kind === 'final').map((o) => o.stage_id)).toEqual([1]);
    const dispatched = up.events.filter(
      (e) => e.type === 'request:dispatched' && 'request_id' in e && e.request_id === 'dag-e1',
    );
    expect(dispatched.map((e) => (e as { stage_id: number }).stage_id)).toEqual([1]);
    expect(() => up.router.generate('x', { finalStages: [1], entryStage: 2 })).toThrow(
      /stage 2 does not lead to the final stages 1/,
    );
  }, 30_000);

  it('an aborted request ends its in-flight stage with outcome aborted', async () => {
    const abort = new AbortController();
    const seen: PipelineOutput[] = [];
    await expect(
      (async () => {
        for await (const o of up.router.generate('abort me in stage 1', {
          requestId: 'dag-a1',
          signal: abort.signal,
          finalStages: [1],
        })) {
          seen.push(o);
          // Stage 1 is the slow one: abort on its first token.
          if (o.stage_id === 1) abort.abort(new Error('client went away'));
        }
      })(),
    ).rejects.toThrow(/client went away/);
    expect(seen.some((o) => o.stage_id === 1)).toBe(true);
    const ends = up.events.filter((e) => e.type === 'request:stage_end' && e.request_id === 'dag-a1') as {
      stage_id: number;
      outcome: string;
    }[];
    expect(ends.map((e) => [e.stage_id, e.outcome])).toEqual([
      [0, 'done'],
      [1, 'aborted'],
    ]);
  }, 30_000);
});

describe('router: custom_process_input_func resolution at plan time', () => {
  it('passes a Python dotted path through untouched: plan works, metadata carries the string, requests use the default processor', async () => {
    const dotted = 'vllm_omni.model_executor.stage_input_processors.qwen2_5_omni.thinker2talker';
    const omni = new Omnistage({ plugins: [await referenceLlmPlugin()] });
    const plan = await planPipeline(
      omni,
      await loadPipelineConfig(join(ROUTER_FIXTURES, 'python-processor.yaml'), { platform: 'cpu' }),
      {
        platform: 'cpu',
        env: { PATH: process.env.PATH },
      },
    );
    const stage1 = plan.stages[1]!;
    expect(stage1.input_processor ?? null).toBeNull();
    expect(stage1.replicas[0]!.metadata.custom_process_input_func).toBe(dotted);
    expect(plan.stages[0]!.replicas[0]!.metadata.custom_process_input_func).toBeNull();

    const up = await bringUpFixture('python-processor.yaml');
    try {
      const outs = await collect(up.router.generate('hello python', { requestId: 'py-1' }));
      const finals = outs.filter((o) => o.kind === 'final');
      expect(finals.map((o) => o.stage_id)).toEqual([1]);
      expect(textOf(finals[0]!.data).length).toBeGreaterThan(0);
    } finally {
      await releaseAll();
    }
  }, 30_000);

  it('fails the plan with OMNI_CONFIG_INVALID at the YAML line when the export is missing', async () => {
    const omni = new Omnistage({ plugins: [await referenceLlmPlugin()] });
    const config = await loadPipelineConfig(join(ROUTER_FIXTURES, 'missing-export.yaml'), { platform: 'cpu' });
    let err: unknown;
    try {
      await planPipeline(omni, config, { platform: 'cpu', env: { PATH: process.env.PATH } });
    } catch (e) {
      err = e;
    }
    expect(isOmniError(err)).toBe(true);
    const e = err as OmniError;
    expect(e.code).toBe('OMNI_CONFIG_INVALID');
    expect(e.message).toContain('stage 1');
    expect(e.message).toContain('"nope"');
    expect(e.location?.file).toBe(join(ROUTER_FIXTURES, 'missing-export.yaml'));
    expect(e.location?.line).toBe(fixtureLine('missing-export.yaml', 'custom_process_input_func'));
    expect(e.hint).toContain('join');
  });

  it('fails the plan with OMNI_CONFIG_INVALID when the module cannot be loaded', async () => {
    const omni = new Omnistage({ plugins: [await referenceLlmPlugin()] });
    const text = `stage_args:
  - stage_id: 0
    stage_type: llm
    engine: reference
  - stage_id: 1
    stage_type: llm
    engine: reference
    engine_input_source: [0]
    custom_process_input_func: ./no-such-module.mjs#join
`;
    const config = await loadPipelineConfig({ text, path: join(ROUTER_FIXTURES, 'inline.yaml') }, { platform: 'cpu' });
    await expect(
      planPipeline(omni, config, { platform: 'cpu', env: { PATH: process.env.PATH } }),
    ).rejects.toMatchObject({
      code: 'OMNI_CONFIG_INVALID',
      location: { line: 9 },
    });
  });
});
