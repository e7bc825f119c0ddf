import { describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { at, yaml, testRegistry } from './helpers.js';

const text = yaml`
  stage_args:
    - stage_id: 0
    - stage_id: 1
      engine_input_source: [0]
    - stage_id: 2
      stage_type: diffusion
      engine_input_source: [0]
  modes:
    - mode: text-to-image
      stages: [0, 2]
    - mode: text-to-text
      stages: 0
    - mode: nothing
      stages: [7]
`;
const load = (mode?: string) =>
  loadPipelineConfig({ text, path: '/cfg/modes.yaml' }, mode === undefined ? {} : { mode });

describe('modes', () => {
  it('defaults to text-to-image when the file has modes, keeping order and renumbering stage_idx', async () => {
    const config = await load();
    expect(config.stages.map((s) => [s.stage_idx, s.stage_id])).toEqual([
      [0, 0],
      [1, 2],
    ]);
    expect(config.warnings).toEqual([]);
  });

  it('accepts a single stage id', async () => {
    const config = await load('text-to-text');
    expect(config.stages.map((s) => s.stage_id)).toEqual([0]);
  });

  it('an unknown mode keeps every stage, with a warning at `modes`', async () => {
    const config = await load('text-to-speech');
    expect(config.stages.map((s) => s.stage_id)).toEqual([0, 1, 2]);
    expect(config.warnings.map((w) => [w.code, at(w)])).toEqual([['OMNI_WARN_MODE_UNKNOWN', 'modes.yaml:8:1']]);
    expect(config.warnings[0]?.hint).toContain('Declared modes: text-to-image, text-to-text, nothing.');
  });

  it('a mode that matches no stage keeps every stage, with a warning at that mode', async () => {
    const config = await load('nothing');
    expect(config.stages.map((s) => s.stage_id)).toEqual([0, 1, 2]);
    expect(config.warnings.map((w) => [w.code, at(w)])).toEqual([['OMNI_WARN_MODE_NO_STAGES', 'modes.yaml:13:5']]);
  });

  it('keeps every stage when the file has no modes; a mode asked for by name is warned about', async () => {
    const text = 'stage_args:\n  - stage_id: 0\n  - stage_id: 1\n';
    const config = await loadPipelineConfig({ text }, { mode: 'text-to-text' });
    expect(config.file).toBe('<inline>');
    expect(config.stages).toHaveLength(2);
    expect(config.warnings.map((w) => w.code)).toEqual(['OMNI_WARN_MODE_IGNORED']);
    expect((await loadPipelineConfig({ text })).warnings).toEqual([]);
  });

  it('works for deploy files too', async () => {
    const config = await loadPipelineConfig(
      {
        text: 'pipeline: bagel\nstages:\n  - stage_id: 0\nmodes:\n  - { mode: understanding, stages: [0] }\nasync_chunk: false\n',
      },
      { mode: 'understanding', pipelines: testRegistry() },
    );
    expect(config.stages.map((s) => s.stage_id)).toEqual([0]);
  });
});
