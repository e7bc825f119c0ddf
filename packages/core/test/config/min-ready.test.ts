/**
 * `runtime.min_ready` (head mode, docs/scale-out.md): the live replicas a stage needs before the
 * head serves. Pipeline-wide in a legacy file's top-level `runtime:`, per stage in a stage's
 * `runtime:` block (which wins), default 1; a bad value is a located config error.
 */
import { describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { at, rejection, TEST_CHAIN, testRegistry, where, yaml } from './helpers.js';

const legacy = (text: string) => loadPipelineConfig({ text, path: '/cfg/pipeline.yaml' });
const deploy = (text: string) =>
  loadPipelineConfig({ text, path: '/cfg/custom.yaml' }, { pipelines: testRegistry(), pipeline: TEST_CHAIN.name });

describe('runtime.min_ready', () => {
  it('defaults to 1, takes the top-level runtime value, and a stage value wins over it', async () => {
    const plain = await legacy(yaml`
      stage_args:
        - stage_id: 0
    `);
    expect(plain.stages[0]!.runtime.min_ready).toBe(1);
    const config = await legacy(yaml`
      runtime:
        min_ready: 2
      stage_args:
        - stage_id: 0
        - stage_id: 1
          runtime:
            min_ready: 3
          engine_input_source: [0]
    `);
    expect(config.stages.map((s) => s.runtime.min_ready)).toEqual([2, 3]);
    expect(at(config.stages[1]!.locations.at('runtime.min_ready'))).toBe('pipeline.yaml:7:18');
  });

  it('is read from a deploy stage runtime block', async () => {
    const config = await deploy(yaml`
      stages:
        - stage_id: 0
          runtime: { min_ready: 2 }
        - stage_id: 1
    `);
    expect(config.stages.map((s) => s.runtime.min_ready)).toEqual([2, 1]);
  });

  it.each([
    ['0', 'must be ≥ 1'],
    ['1.5', 'must be an integer'],
    ['"two"', 'must be an integer'],
  ])('min_ready: %s is OMNI_CONFIG_INVALID at its value, with a fix', async (value, what) => {
    const err = await rejection(
      legacy(yaml`
        stage_args:
          - stage_id: 0
            runtime:
              min_ready: ${value}
      `),
    );
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(where(err)).toBe('pipeline.yaml:4:18');
    expect(err.message).toContain('`stage_args[0].runtime.min_ready`');
    expect(err.message).toContain(what);
    expect(err.hint).toMatch(/whole number ≥ 1/);
  });

  it('a top-level runtime.min_ready below 1 is located too', async () => {
    const err = await rejection(
      legacy(yaml`
        runtime:
          min_ready: 0
        stage_args:
          - stage_id: 0
      `),
    );
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(where(err)).toBe('pipeline.yaml:2:14');
  });
});
