/**
 * A plan has a stage level: each `StagePlan` carries its stage's config, engine and template
 * replica, so every stage-level answer (topology, transfers, routing, the head's template) holds for
 * a stage planned with `num_replicas: 0`, which has no replica at all. The plan is frozen once built,
 * and deriving another plan (head mode) leaves it as it was.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { markAcrossHosts } from '../../src/cluster/cross-host.js';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { SHM_CONNECTOR } from '../../src/connectors/connector-config.js';
import { isOmniError } from '../../src/errors.js';
import { Omnistage } from '../../src/omnistage.js';
import { planToJson } from '../../src/orchestrate/plan-json.js';
import { createRouter, maxInflightOf } from '../../src/orchestrate/router.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import { captureStageFactoryContexts } from '../../src/planning/stage-factory-context.js';
import type { PlanOptions } from '../../src/hooks/contexts.js';

const dir = mkdtempSync(join(tmpdir(), 'stage-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Stage 0 sends over shared memory (the connector config a KV plugin would inject) to stage 1, which agents fill (`num_replicas: 0`). */
const YAML = `stage_args:
  - stage_id: 0
    stage_type: t
    runtime: { devices: "0", max_inflight_per_replica: 3 }
    engine_args:
      model_stage: first
      omni_kv_config: { connector_config: { type: ${SHM_CONNECTOR}, shm_threshold_bytes: 1024 } }
  - stage_id: 1
    stage_type: t
    runtime: { devices: "1", num_replicas: 0 }
    engine_args: { model_stage: second, max_num_seqs: 128 }
    engine_input_source: [0]
    final_output: true
    final_output_type: audio
`;

async function plan(options: PlanOptions = {}) {
  const omni = new Omnistage({ logger: pino({ level: 'silent' }) });
  omni.defineStageType({ name: 't', defaultEngine: 'e', devicesPerReplica: () => 1 });
  omni.defineEngine({
    stageType: 't',
    name: 'e',
    resolveWorker: (ctx) => ({
      command: 'worker',
      args: [String(ctx.replicaId)],
      env: {},
      attach: 'control',
    }),
  });
  const file = join(dir, 'p.yaml');
  writeFileSync(file, YAML);
  const config = await loadPipelineConfig(file, { platform: 'cpu' });
  return { omni, config, plan: await planPipeline(omni, config, { platform: 'cpu', ...options }) };
}

describe('the stage level of a plan', () => {
  it('a stage planned with num_replicas: 0 has no replica, and its stage-level answers all hold', async () => {
    const { plan: p } = await plan({ allowZeroReplicas: true });
    const [first, filled] = p.stages;
    expect(first!.replicas.map((r) => r.replica_id)).toEqual([0]);
    expect(filled!.num_replicas).toBe(0);
    expect(filled!.replicas).toEqual([]);
    // Its config and engine are the stage's, its template is planned (what agents' replicas start from).
    expect([filled!.stage.final_output_type, filled!.engine, filled!.template.worker.args]).toEqual([
      'audio',
      'e',
      ['0'],
    ]);
    // plan --json: the topology of the stage, and no replica.
    const json = planToJson(p) as { stages: Record<string, unknown>[] };
    expect(json.stages[1]).toMatchObject({
      model_stage: 'second',
      engine_input_source: [0],
      final_output: true,
      final_output_type: 'audio',
      num_replicas: 0,
      replicas: [],
    });
    // The edge into it, carried by the producer's connector.
    expect(p.transfers).toEqual([
      { from: 0, to: 1, connector: SHM_CONNECTOR, carried_by: 'shm', threshold_bytes: 1024 },
    ]);
    // Routing fields: each stage's bound from its own config.
    expect(p.stages.map((s) => maxInflightOf(s))).toEqual([3, 128]);
    // The head builds late replicas of it from its template.
    expect(captureStageFactoryContexts(p.stages, 1).get(1)?.base_metadata.model_stage).toBe('second');
  });

  it('the router takes a stage with no replica: a request waits for a live replica, then fails naming the stage', async () => {
    const { omni, plan: p } = await plan({ allowZeroReplicas: true });
    const router = createRouter(
      {
        services: omni,
        plan: p,
        payloads: null,
        failed: new Promise<never>(() => {}),
        stopping: false,
        liveReplicas: () => [],
      },
      { replicaWaitMs: 0 },
    );
    const err = await router.complete('hi', { finalStages: [1] }).catch((e: unknown) => e);
    expect(isOmniError(err) && [err.code, err.message]).toEqual([
      'OMNI_STAGE_UNAVAILABLE',
      'stage 0 has no live replica',
    ]);
    expect(() => router.generate('hi', { finalStages: [0] })).toThrow('stage 0 is not a final_output stage');
  });

  it('without allowZeroReplicas, num_replicas: 0 plans one replica (upstream clamps it)', async () => {
    const { plan: p } = await plan();
    expect(p.stages.map((s) => s.replicas.length)).toEqual([1, 1]);
  });
});

describe('a plan is frozen once built', () => {
  it('every part of it throws on change, and the loaded config stays as it was', async () => {
    const { config, plan: p } = await plan();
    const replica = p.stages[0]!.replicas[0]!;
    const changes: [string, () => unknown][] = [
      ['run id', () => ((p as { run_id: string }).run_id = 'x')],
      ['a stage', () => (p.stages as unknown[]).push({})],
      ['a transfer', () => ((p.transfers[0] as { carried_by: string }).carried_by = 'inline')],
      ['a group', () => p.groups[0]!.replicas.push([9, 9])],
      ['a warning', () => (p.warnings as unknown[]).push({})],
      ['stage config', () => ((p.stages[0]!.stage.runtime as { devices: string }).devices = '7')],
      ['stage engine args', () => ((p.stages[0]!.stage.engine_args as Record<string, unknown>)['x'] = 1)],
      ['replica engine args', () => ((replica.engine_args as Record<string, unknown>)['x'] = 1)],
      ['replica env', () => ((replica.worker.env as Record<string, string>)['X'] = '1')],
      ['replica group', () => ((replica as { group: number }).group = 5)],
      ['template', () => ((p.stages[1]!.template.metadata as { replica_id: number }).replica_id = 3)],
    ];
    for (const [what, change] of changes) expect(change, what).toThrow(TypeError);
    // The plan's configs are copies: the loaded config is not frozen with it.
    config.stages[0]!.engine_args['probe'] = 1;
    expect(p.stages[0]!.stage.engine_args['probe']).toBeUndefined();
  });

  it('head mode derives a plan with the cross-host edges marked and leaves the planned one unchanged', async () => {
    const { plan: p } = await plan({ allowZeroReplicas: true });
    const before = JSON.stringify(planToJson(p));
    const { plan: head, crossing } = markAcrossHosts(p, new Set([0]));
    expect(crossing.map((t) => [t.from, t.to, t.carried_by, t.across_hosts])).toEqual([[0, 1, 'shm', true]]);
    expect(head.transfers).toEqual(crossing);
    expect(JSON.stringify(planToJson(p))).toBe(before);
    expect(p.transfers[0]!.across_hosts).toBeUndefined();
    expect(Object.isFrozen(head.transfers[0])).toBe(true);
  });
});
