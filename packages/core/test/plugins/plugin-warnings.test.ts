/**
 * `ctx.warn` from a plugin: a plain string (what docs/plugins.md readers try first) becomes an
 * `OMNI_WARN_PLUGIN` warning with that text, instead of "warning undefined: undefined"; a
 * `diagnostic(...)` keeps its own code, location and hint.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { diagnostic } from '../../src/diagnostics.js';
import { Omnistage } from '../../src/omnistage.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';

const dir = mkdtempSync(join(tmpdir(), 'plugin-warnings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ctx.warn from a plugin', () => {
  it('takes a string or a diagnostic(...)', async () => {
    const omni = new Omnistage();
    omni.defineStageType({
      name: 'tts',
      defaultEngine: 'e',
      devicesPerReplica: () => 1,
      validateStage: (stage, ctx) => {
        ctx.warn('voice "alto" is slow on CPU');
        ctx.warn(diagnostic('OMNI_WARN_DEPRECATED_KEY', 'old key', stage.locations.at('engine_args'), 'drop it'));
      },
    });
    omni.defineEngine({
      stageType: 'tts',
      name: 'e',
      resolveWorker: () => ({ command: 'x', args: [], env: {}, attach: 'control' }),
    });
    const file = join(dir, 'p.yaml');
    writeFileSync(file, 'stage_args:\n  - stage_id: 0\n    stage_type: tts\n    engine_args: { voice: alto }\n');
    const plan = await planPipeline(omni, await loadPipelineConfig(file, { platform: 'cpu' }), { platform: 'cpu' });
    expect(plan.warnings[0]).toEqual({
      code: 'OMNI_WARN_PLUGIN',
      message: 'voice "alto" is slow on CPU',
      file: null,
      line: null,
      col: null,
    });
    expect(plan.warnings[1]).toMatchObject({
      code: 'OMNI_WARN_DEPRECATED_KEY',
      message: 'old key',
      hint: 'drop it',
      file,
      line: 4,
    });
  });
});
