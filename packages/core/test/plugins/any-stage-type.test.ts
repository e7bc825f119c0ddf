/**
 * Engines for every stage type (`stageType: ANY_STAGE_TYPE`): they serve types defined before and
 * after them, and a type's own engine of the same name wins, in lookup and in resolveWorker.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { Omnistage } from '../../src/omnistage.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import { ANY_STAGE_TYPE, type EngineDefinition } from '../../src/plugins/definition-types.js';

const dir = mkdtempSync(join(tmpdir(), 'any-stage-type-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const engine = (stageType: string, name: string, tag: string): EngineDefinition => ({
  stageType,
  name,
  resolveWorker: () => ({ command: tag, args: [], env: {}, attach: 'control' }),
});

describe('an engine for every stage type', () => {
  it("serves types defined before and after it; a type's own engine of that name wins", async () => {
    const omni = new Omnistage();
    omni.defineStageType({ name: 'early', defaultEngine: 'any', devicesPerReplica: () => 1 });
    omni.defineEngine(engine(ANY_STAGE_TYPE, 'any', 'wildcard'));
    omni.defineStageType({ name: 'late', defaultEngine: 'any', devicesPerReplica: () => 1 });
    omni.defineStageType({ name: 'own', defaultEngine: 'any', devicesPerReplica: () => 1 });
    omni.defineEngine(engine('own', 'any', 'own-engine'));
    expect(omni.definitions.engineNames('late')).toEqual(['any']);
    expect(omni.definitions.engine('own', 'any')?.resolveWorker).not.toBe(
      omni.definitions.engine('early', 'any')?.resolveWorker,
    );

    const file = join(dir, 'p.yaml');
    writeFileSync(
      file,
      ['early', 'late', 'own']
        .map((t, i) => `  - stage_id: ${i}\n    stage_type: ${t}\n    runtime: { devices: "${i}" }\n`)
        .join('')
        .replace(/^/, 'stage_args:\n'),
    );
    const plan = await planPipeline(omni, await loadPipelineConfig(file, { platform: 'cpu' }), { platform: 'cpu' });
    expect(plan.stages.map((s) => s.replicas[0]!.worker.command)).toEqual(['wildcard', 'wildcard', 'own-engine']);
  });
});
