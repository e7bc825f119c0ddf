/**
 * `EngineDefinition.engineArgs`: engine-arg keys checked against what the stage's engine takes, at
 * plan time, from a real YAML file (locations are real line:col of the key): an unknown key is a
 * warning with did-you-mean, a near miss of a key the planner reads is an error for every engine,
 * a zod declaration checks values, and a bare `--stage-overrides` key is an error unless the engine
 * takes any key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { Omnistage } from '../../src/omnistage.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import type { EngineArgsDeclaration } from '../../src/plugins/definition-types.js';
import { catchOmniAsync } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'engine-args-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An orchestrator with stage type `tts` whose engine `e` declares `declaration`, and a shared schema. */
function omniWith(declaration: EngineArgsDeclaration | undefined): Omnistage {
  const omni = new Omnistage();
  omni.defineStageType({ name: 'tts', defaultEngine: 'e', devicesPerReplica: () => 1 });
  omni.defineEngine({
    stageType: 'tts',
    name: 'e',
    ...(declaration === undefined ? {} : { engineArgs: declaration }),
    resolveWorker: () => ({ command: 'true', args: [], env: {}, attach: 'control' }),
  });
  omni.definitions.defineSharedEngineArgsSchema({ type: 'object', properties: { shared_knob: { type: 'boolean' } } });
  return omni;
}

let n = 0;
/** Plans one `tts` stage with these engine_args lines (each `key: value`, from line 5 on, col 7). */
async function plan(declaration: EngineArgsDeclaration | undefined, args: string[], stageOverrides?: string) {
  const file = join(dir, `p${n++}.yaml`);
  writeFileSync(
    file,
    [
      'stage_args:',
      '  - stage_id: 0',
      '    stage_type: tts',
      '    engine_args:',
      ...args.map((a) => `      ${a}`),
      '',
    ].join('\n'),
  );
  const config = await loadPipelineConfig(file, {
    platform: 'cpu',
    ...(stageOverrides === undefined ? {} : { stageOverrides }),
  });
  return { file, run: () => planPipeline(omniWith(declaration), config, { platform: 'cpu' }) };
}

const KEYS = ['voice', 'words_per_minute'];
const ZOD = z.object({ voice: z.enum(['alto', 'bass']).optional(), words_per_minute: z.number().min(60).optional() });

describe('engine args an engine declares', () => {
  it('an unknown key is a warning at the key with did-you-mean; declared, core and shared keys are not', async () => {
    for (const declaration of [KEYS, ZOD]) {
      const { file, run } = await plan(declaration, [
        'voice: alto',
        'words_per_minut: 90',
        'gpu_memory_utilization: 0.2',
        'shared_knob: true',
        'model_stage: talker',
      ]);
      const warnings = (await run()).warnings.filter((w) => w.code === 'OMNI_WARN_ENGINE_ARG_UNKNOWN');
      expect(warnings.map((w) => [w.file, w.line, w.col])).toEqual([[file, 6, 7]]);
      expect(warnings[0]!.message).toContain('engine "e" (tts) does not take engine_args.words_per_minut');
      expect(warnings[0]!.hint).toContain('Did you mean `words_per_minute`?');
    }
  });

  it('without a close key the hint lists the keys the engine takes', async () => {
    const { run } = await plan(KEYS, ['zzz_unrelated: 1']);
    const [w] = (await run()).warnings;
    expect(w?.hint).toContain('It takes:');
    expect(w?.hint).toContain('words_per_minute');
  });

  it.each([
    ['a key list', KEYS],
    ['a zod schema', ZOD],
    ['any key', 'any' as const],
    ['no declaration', undefined],
  ])('with %s, a near miss of a key the planner reads is an error at the key', async (_name, declaration) => {
    const { file, run } = await plan(declaration, ['voice: alto', 'tensor_paralel_size: 2']);
    const err = await catchOmniAsync(run);
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.location).toEqual({ file, line: 6, col: 7 });
    expect(err.message).toContain('engine_args.tensor_paralel_size is not `tensor_parallel_size`');
    expect(err.hint).toContain('Did you mean `tensor_parallel_size`?');
  });

  it('an engine that takes any key gets no warning for unknown keys', async () => {
    const { run } = await plan('any', ['whatever_flag: 1']);
    expect((await run()).warnings).toEqual([]);
  });

  it('a zod schema checks the values: the first problem is an error at the value', async () => {
    const { file, run } = await plan(ZOD, ['voice: alto', 'words_per_minute: 12']);
    const err = await catchOmniAsync(run);
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.location).toEqual({ file, line: 6, col: 25 });
    expect(err.message).toContain('engine_args.words_per_minute is not valid for engine "e"');
  });
});

describe('--stage-overrides keys on an engine that declares its args', () => {
  it('a bare key the engine does not take is an error naming the key, the stage and the allowed keys', async () => {
    const { run } = await plan(KEYS, ['voice: alto'], '{"0": {"zzz_unknown": 1}}');
    const err = await catchOmniAsync(run);
    expect(err.code).toBe('OMNI_CONFIG_OVERRIDE_INVALID');
    expect(err.location).toEqual({ file: '<stage-overrides>', line: 1, col: 8 });
    expect(err.message).toContain('stage 0 has no key `zzz_unknown`');
    expect(err.hint).toContain('Allowed: devices, num_replicas');
    expect(err.hint).toContain('words_per_minute');
  });

  it('a bare near miss of an engine arg names it', async () => {
    const err = await catchOmniAsync((await plan(KEYS, ['voice: alto'], '{"0": {"wordz_per_minute": 90}}')).run);
    expect(err.hint).toContain('Did you mean `words_per_minute`?');
  });

  it('a bare key the engine takes is an engine arg; nested under engine_args an unknown key is a warning, not an error', async () => {
    const bare = await (await plan(KEYS, ['voice: alto'], '{"0": {"words_per_minute": 90}}')).run();
    expect(bare.stages[0]!.replicas[0]!.engine_args['words_per_minute']).toBe(90);
    expect(bare.warnings).toEqual([]);
    const nested = await (await plan(KEYS, ['voice: alto'], '{"0": {"engine_args": {"zzz_unknown": 1}}}')).run();
    expect(nested.warnings.map((w) => [w.code, w.file, w.line, w.col])).toEqual([
      ['OMNI_WARN_ENGINE_ARG_UNKNOWN', '<stage-overrides>', 1, 24],
    ]);
  });

  it('an engine that takes any key passes a bare unknown key on', async () => {
    const planned = await (await plan('any', ['voice: alto'], '{"0": {"zzz_unknown": 1}}')).run();
    expect(planned.stages[0]!.replicas[0]!.engine_args['zzz_unknown']).toBe(1);
  });
});
