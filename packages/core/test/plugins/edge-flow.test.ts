/**
 * `EngineDefinition.edgeFlow`: the consumer's engine may drive an edge's requests itself. Its flow
 * shows on the plan's transfer and becomes the consumer's input processor; errors name the engine.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { isOmniError } from '../../src/errors.js';
import { Omnistage } from '../../src/omnistage.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import type { EdgeFlow, EngineDefinition } from '../../src/plugins/definition-types.js';
import type { StagePlan } from '../../src/planning/types.js';

const dir = mkdtempSync(join(tmpdir(), 'edge-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Stage 0 and 1 feed stage 2 (two sources), stage 0 feeds stage 1 (one source). */
const YAML = `stage_args:
  - { stage_id: 0, stage_type: t, runtime: { devices: "0" } }
  - { stage_id: 1, stage_type: t, runtime: { devices: "1" }, engine_input_source: [0] }
  - { stage_id: 2, stage_type: t, runtime: { devices: "2" }, engine_input_source: [0, 1], final_output: true }
`;

async function planWith(edgeFlow: EngineDefinition['edgeFlow']) {
  const omni = new Omnistage();
  omni.defineStageType({ name: 't', defaultEngine: 'e', devicesPerReplica: () => 1 });
  omni.defineEngine({
    stageType: 't',
    name: 'e',
    resolveWorker: () => ({ command: 'x', args: [], env: {}, attach: 'control' }),
    edgeFlow,
  });
  const file = join(dir, 'p.yaml');
  writeFileSync(file, YAML);
  return planPipeline(omni, await loadPipelineConfig(file, { platform: 'cpu' }), { platform: 'cpu' });
}

describe('an engine that drives an edge (edgeFlow)', () => {
  it('marks the edge in the plan and gives the consumer its input processor; a stage of two sources is not asked', async () => {
    const asked: [number, number][] = [];
    const flow: EdgeFlow = {
      description: 'two-phase',
      inputProcessor: (sources, ctx) => ({ from: sources[0]!.stage_id, user: ctx.userInput }),
    };
    const plan = await planWith((producer: StagePlan, consumer: StagePlan) => {
      asked.push([producer.stage_id, consumer.stage_id]);
      return flow;
    });
    expect(asked).toEqual([[0, 1]]);
    expect(plan.transfers.map((t) => [t.from, t.to, t.flow])).toEqual([
      [0, 1, 'two-phase'],
      [0, 2, undefined],
      [1, 2, undefined],
    ]);
    const processor = plan.stages[1]!.input_processor!;
    expect(
      await processor([{ stage_id: 0, replica_id: 0, data: 'x' }], {
        stage: plan.stages[1]!.stage,
        userInput: 'hi',
        request_id: 'r',
      }),
    ).toEqual({ from: 0, user: 'hi' });
    expect(plan.stages[2]!.input_processor ?? null).toBeNull();
  });

  it('an engine that answers undefined leaves the edge alone', async () => {
    const plan = await planWith(() => undefined);
    expect(plan.transfers.every((t) => t.flow === undefined)).toBe(true);
    expect(plan.stages.every((s) => (s.input_processor ?? null) === null)).toBe(true);
  });

  it('errors of edgeFlow and of its processor name the engine (plan: exit 2, run: exit 1)', async () => {
    const planErr = await planWith(() => {
      throw new Error('boom');
    }).catch((e: unknown) => e);
    expect(isOmniError(planErr) && planErr.code).toBe('OMNI_PLUGIN_FAILED');
    expect(isOmniError(planErr) && planErr.message).toMatch(/engine "e" edgeFlow.*stage 1.*boom/);
    expect(isOmniError(planErr) && planErr.exitCode).toBe(2);

    const plan = await planWith(() => ({
      description: 'd',
      inputProcessor: () => {
        throw new Error('bad source');
      },
    }));
    const runErr = await Promise.resolve()
      .then(() =>
        plan.stages[1]!.input_processor!([], {
          stage: plan.stages[1]!.stage,
          userInput: null,
          request_id: 'r',
        }),
      )
      .catch((e: unknown) => e);
    expect(isOmniError(runErr) && runErr.message).toMatch(/engine "e" edgeFlow inputProcessor.*bad source/);
    expect(isOmniError(runErr) && runErr.exitCode).toBe(1);
  });
});
