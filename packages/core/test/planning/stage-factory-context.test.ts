import { describe, expect, it } from 'vitest';
import { createStageConfig } from '../../src/config/stage-defaults.js';
import { extractStageMetadata } from '../../src/planning/stage-metadata.js';
import { captureStageFactoryContexts } from '../../src/planning/stage-factory-context.js';
import { catchOmni } from './helpers.js';

function plan(stage_idx: number, stage_id: number, stage_type: string) {
  const stage = createStageConfig({ stage_id, stage_idx, stage_type, engine_args: { tensor_parallel_size: 1 } });
  return {
    stage_idx,
    stage_id,
    stage_type,
    stage,
    template: { metadata: extractStageMetadata(stage), engine_args: { replica: 0 } },
  };
}

describe('captureStageFactoryContexts', () => {
  it("keys by configured stage id and builds from the stage's template", () => {
    const llm = plan(0, 7, 'llm');
    const dit = plan(1, 11, 'diffusion');
    const contexts = captureStageFactoryContexts([llm, dit], 4);
    expect([...contexts.keys()]).toEqual([7, 11]);
    const c7 = contexts.get(7);
    expect(c7).toEqual({
      stage_id: 7,
      stage_type: 'llm',
      stage: llm.stage,
      base_metadata: llm.template.metadata,
      engine_args: { replica: 0 },
      diffusion_batch_size: 4,
    });
    expect(c7?.base_metadata.replica_id).toBe(0);
    expect(c7?.stage).toBe(llm.stage);
    expect(contexts.get(11)?.stage_type).toBe('diffusion');
  });

  it('skips stages without a template', () => {
    const empty = { ...plan(0, 0, 'llm'), template: null };
    expect(captureStageFactoryContexts([empty, plan(1, 1, 'llm')], 1).size).toBe(1);
  });

  it('falls back to llm for an empty metadata stage type and null engine args when absent', () => {
    const p = plan(0, 0, 'llm');
    const contexts = captureStageFactoryContexts(
      [{ ...p, template: { metadata: { ...p.template.metadata, stage_type: '' } } }],
      1,
    );
    expect(contexts.get(0)?.stage_type).toBe('llm');
    expect(contexts.get(0)?.engine_args).toBeNull();
  });

  it('rejects two stages with one stage id', () => {
    const err = catchOmni(() => captureStageFactoryContexts([plan(0, 3, 'llm'), plan(1, 3, 'llm')], 1));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toBe('Two stages have stage_id 3.');
  });
});
