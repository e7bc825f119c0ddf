/**
 * Issue 15, point 4: the inputs the fault campaign found crashing, hanging or eating memory. Each
 * is refused with OMNI_CONFIG_* (exit code 2) at a file:line:col, quickly and without building
 * anything large. (The seeded fuzz over whole pipelines is packages/cli/test/config-fuzz.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { CONFIG_LIMITS } from '../../src/limits.js';
import { rejection, where, yaml } from './helpers.js';

const load = (text: string, stageOverrides?: string) =>
  loadPipelineConfig({ text, path: '/cfg/pipeline.yaml' }, stageOverrides === undefined ? {} : { stageOverrides });

const ONE_STAGE = yaml`
  stage_args:
    - stage_id: 0
      engine_args:
        max_num_seqs: 2
`;

async function refused(text: string, stageOverrides?: string) {
  const err = await rejection(load(text, stageOverrides));
  expect(err.exitCode).toBe(2);
  expect(err.location, `${err.code}: ${err.message}`).toBeDefined();
  return err;
}

describe('hostile configuration inputs', () => {
  it('self-referential aliases and merge keys, in files and in --stage-overrides', async () => {
    const a = await refused('a: &a [*a]\nstage_args: []\n');
    expect([a.code, where(a), a.message]).toEqual([
      'OMNI_CONFIG_PARSE',
      'pipeline.yaml:1:8',
      'The alias `*a` refers to a value that contains it.',
    ]);
    const merge = await refused('stage_args: [&s {<<: *s, stage_id: 0}]\n');
    expect([merge.code, where(merge)]).toEqual(['OMNI_CONFIG_PARSE', 'pipeline.yaml:1:22']);
    const override = await refused(ONE_STAGE, '&a [*a]');
    expect([override.code, override.location?.file]).toEqual(['OMNI_CONFIG_OVERRIDE_INVALID', '<stage-overrides>']);
  });

  it('billion laughs stops at the value budget, at the alias that crossed it', async () => {
    const levels = ['a: &a [1,1,1,1,1,1,1,1,1,1]'];
    for (const [i, name] of ['b', 'c', 'd', 'e', 'f'].entries())
      levels.push(`${name}: &${name} [${Array(10).fill(`*${'abcde'[i]}`).join(',')}]`);
    const err = await refused(`${levels.join('\n')}\n${ONE_STAGE}`);
    expect(err.message).toBe(`The document expands to more than ${CONFIG_LIMITS.maxNodes} values through aliases.`);
  });

  it('thousands of anchors are refused before the parser spends seconds on them', async () => {
    const anchors = Array.from({ length: 12_000 }, (_, i) => `x${i}: &a${i} ${i}`).join('\n');
    const t0 = performance.now();
    const err = await refused(`${ONE_STAGE}${anchors}\n`);
    expect(err.message).toContain(`more than ${CONFIG_LIMITS.maxAliases} YAML anchors and aliases`);
    expect(where(err)).toBe(`pipeline.yaml:${4 + 1 + CONFIG_LIMITS.maxAliases}:8`);
    console.log(`[measure] 12,000 anchors refused in ${Math.round(performance.now() - t0)} ms`);
  });

  it('!!omap and !!pairs say where they are', async () => {
    for (const tag of ['!!omap', '!!pairs']) {
      const line = `      weird: ${tag} [a: 1]`;
      const err = await refused(`${ONE_STAGE}${line}\n`);
      expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_PARSE', `pipeline.yaml:5:${line.indexOf('[') + 1}`]);
      expect(err.message).toContain(tag.slice(2));
    }
  });

  it('NaN and Infinity are named as such, not "null"', async () => {
    for (const [text, shown] of [
      ['.nan', 'NaN'],
      ['-.inf', '-Infinity'],
      ['1e999', 'Infinity'],
    ] as const) {
      const err = await refused(`${ONE_STAGE}      gpu_memory_utilization: ${text}\n`);
      expect([where(err), err.message]).toEqual([
        'pipeline.yaml:5:31',
        `\`${shown}\` is not a usable number in a pipeline file.`,
      ]);
    }
  });

  it('caps file size, string length and key length with a located error', async () => {
    const huge = await refused(`${ONE_STAGE}      x: "${'y'.repeat(CONFIG_LIMITS.maxTextBytes)}"\n`);
    expect([huge.code, where(huge)]).toEqual(['OMNI_CONFIG_PARSE', 'pipeline.yaml:1:1']);
    const long = await refused(`${ONE_STAGE}      x: "${'y'.repeat(CONFIG_LIMITS.maxStringChars + 1)}"\n`);
    expect([long.code, where(long)]).toEqual(['OMNI_CONFIG_PARSE', 'pipeline.yaml:5:10']);
    const key = await refused(`${ONE_STAGE}      "${'k'.repeat(CONFIG_LIMITS.maxKeyChars + 1)}": 1\n`);
    expect([key.code, where(key)]).toEqual(['OMNI_CONFIG_PARSE', 'pipeline.yaml:5:7']);
  });

  it('deep nesting is refused at the level that crossed the limit', async () => {
    const depth = CONFIG_LIMITS.maxDepth + 5;
    const err = await refused(`${ONE_STAGE}      x: ${'['.repeat(depth)}${']'.repeat(depth)}\n`);
    expect(err.code).toBe('OMNI_CONFIG_PARSE');
    expect(err.message).toContain(`nested more than ${CONFIG_LIMITS.maxDepth} levels`);
  });

  it('Object.prototype member names are plain keys: kept as data, never looked up on the prototype', async () => {
    const config = await load(`${ONE_STAGE}      constructor: 1\n      toString: 3\n      valueOf: {a: 1}\n`);
    const args = config.stages[0]!.engine_args;
    expect([
      Object.hasOwn(args, 'constructor'),
      Object.hasOwn(args, 'toString'),
      Object.hasOwn(args, 'valueOf'),
    ]).toEqual([true, true, true]);
    expect(Object.getPrototypeOf(args)).toBe(Object.prototype);
    expect([args['constructor'], args['toString'], args['valueOf']]).toEqual([1, 3, { a: 1 }]);
  });

  it('a `__proto__` key is refused where it is, instead of vanishing or reaching a prototype', async () => {
    const err = await refused(`${ONE_STAGE}      __proto__: {x: 1}\n`);
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_PARSE', 'pipeline.yaml:5:7']);
    const override = await refused(ONE_STAGE, '{"0": {"__proto__": {"x": 1}}}');
    expect([override.code, where(override)]).toEqual(['OMNI_CONFIG_OVERRIDE_INVALID', '<stage-overrides>:1:8']);
  });
});
