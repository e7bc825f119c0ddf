/**
 * The shipped registry data is upstream's: the fixtures in this package are byte-identical to
 * `shared/fixtures` (when that is beside the repository), the generated data file is current, and
 * every one of upstream's 59 registry keys plans (through core, with no deploy stages: upstream's
 * defaults) into exactly the stages, stage types, inputs and final outputs upstream records.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Omnistage, isOmniError, loadPipelineConfig, planPipeline, planToJson } from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { llmPlugin } from '@omnistage/plugin-llm';
import { upstreamPipelineData, upstreamPipelinesPlugin } from '../src/index.js';

const PKG = fileURLToPath(new URL('..', import.meta.url));
const SHIPPED = join(PKG, 'fixtures');
const SHARED = join(PKG, '..', '..', '..', 'shared', 'fixtures');

interface UpstreamStage {
  stage_id: number;
  stage_type: string;
  model_stage: string;
  engine_input_source: number[];
  final_output: boolean;
  final_output_type: string | null;
}
const UPSTREAM = JSON.parse(readFileSync(join(SHIPPED, 'upstream-pipelines', 'pipelines.json'), 'utf8')) as Record<
  string,
  { stages: UpstreamStage[]; derived: { async_chunk_true_raises: boolean } }
>;
const KEYS = Object.keys(UPSTREAM);

describe('shipped fixtures and data', () => {
  it.runIf(existsSync(SHARED))('are byte-identical to shared/fixtures', () => {
    for (const dir of ['upstream-pipelines', 'upstream-deploy']) {
      const names = readdirSync(join(SHARED, dir)).sort();
      expect(readdirSync(join(SHIPPED, dir)).sort(), dir).toEqual(names);
      for (const n of names)
        expect(readFileSync(join(SHIPPED, dir, n)).equals(readFileSync(join(SHARED, dir, n))), `${dir}/${n}`).toBe(
          true,
        );
    }
  });

  it('data/pipelines.json is what the generator makes of the fixture, and names the upstream commit', () => {
    const r = spawnSync(process.execPath, [join(PKG, 'scripts', 'generate-pipelines.mjs'), '--check'], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(upstreamPipelineData().upstream_commit).toBe('10906e3a6db947290581b88dc4b6f35bd2a26b41');
    expect(readFileSync(join(SHIPPED, 'upstream-pipelines', 'SOURCES.md'), 'utf8')).toContain(
      upstreamPipelineData().upstream_commit,
    );
  });

  it('the plugin registers all 59 registry keys, in registry order', () => {
    const omni = new Omnistage({ plugins: [upstreamPipelinesPlugin()] });
    expect(KEYS).toHaveLength(59);
    expect(omni.pipelines.names()).toEqual(KEYS);
  });

  it('registering a name twice is a plugin error', () => {
    const omni = new Omnistage({ plugins: [upstreamPipelinesPlugin()] });
    let err: unknown;
    try {
      omni.definePipeline({
        name: 'bagel',
        stages: [{ stage_id: 0, model_stage: 'x', stage_type: 'llm', engine_input_source: [], final_output: true }],
      });
    } catch (e) {
      err = e;
    }
    expect(isOmniError(err) && err.code).toBe('OMNI_PLUGIN_INVALID');
  });
});

describe('every upstream pipeline plans with its real topology', () => {
  it.each(KEYS)('%s', async (key) => {
    const omni = new Omnistage({ plugins: [llmPlugin(), diffusionPlugin(), upstreamPipelinesPlugin()] });
    const load = (text: string) =>
      loadPipelineConfig({ text, path: `/virtual/${key}.yaml` }, { platform: 'cpu', pipelines: omni.pipelines });
    // The deploy default async_chunk: true is refused exactly where upstream raises.
    const bare = await load(`pipeline: ${key}\nstages: []\n`).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isOmniError(bare) ? [bare.code, bare.location?.line] : bare).toEqual(
      UPSTREAM[key]!.derived.async_chunk_true_raises ? ['OMNI_CONFIG_INVALID', 2] : null,
    );
    const config = await load(`pipeline: ${key}\nasync_chunk: false\nstages: []\n`);
    const plan = planToJson(await planPipeline(omni, config, { platform: 'cpu', engine: 'reference', env: {} })) as {
      stages: Record<string, unknown>[];
    };
    const pick = (s: Record<string, unknown>) => [
      s['stage_id'],
      s['stage_type'],
      s['model_stage'],
      s['engine_input_source'],
      s['final_output'],
      s['final_output_type'],
    ];
    expect(plan.stages.map(pick)).toEqual(
      UPSTREAM[key]!.stages.map((s) => pick(s as unknown as Record<string, unknown>)),
    );
  });
});
