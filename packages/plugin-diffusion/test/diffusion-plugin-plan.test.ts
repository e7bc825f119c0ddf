/**
 * Stage type `diffusion` inside a real plan: devices per replica = parallel world size, device
 * init locks for the whole world (upstream takes none outside head mode), the device-count
 * check as a plan error, sampling params checked at their YAML line, inline mode for one replica.
 */
import { Omnistage, isOmniError, loadPipelineConfig, planPipeline, type InitPlan } from '@omnistage/core';
import { llmPlugin } from '@omnistage/plugin-llm';
import { describe, expect, it } from 'vitest';
import { diffusionPlugin } from '../src/index.js';

async function plan(text: string, noInline = false): Promise<InitPlan> {
  const omni = new Omnistage({ plugins: [llmPlugin(), diffusionPlugin()] });
  const config = await loadPipelineConfig({ text, path: '/virtual/diffusion.yaml' }, { platform: 'cpu' });
  return planPipeline(omni, config, { platform: 'cpu', env: {}, noInline });
}

const TWO_REPLICAS = `
stage_args:
  - stage_id: 0
    stage_type: diffusion
    runtime: { devices: "0,1", num_replicas: 2 }
    engine_args:
      parallel_config: { ulysses_degree: 2, ring_degree: 1 }
    default_sampling_params: { num_inference_steps: 4, height: 64, width: 64 }
`;

describe('diffusion stages in a plan', () => {
  it("get upstream's diffusion metadata (no output type, not comprehension, no multimodal data, keeps cfg_kv_collect_func) from the plugin's tap", async () => {
    const p = await plan(`
stage_args:
  - stage_id: 1
    stage_type: diffusion
    is_comprehension: true
    prompt_expand_func: ./hooks.js#expand
    cfg_kv_collect_func: ./hooks.js#collect
    runtime: { devices: "0", requires_multimodal_data: true }
    engine_args: { model_stage: dit, engine_output_type: image }
`);
    expect(p.stages[0]!.replicas[0]!.metadata).toMatchObject({
      stage_type: 'diffusion',
      model_stage: 'dit',
      engine_output_type: null,
      is_comprehension: false,
      requires_multimodal_data: false,
      prompt_expand_func: null,
      cfg_kv_collect_func: './hooks.js#collect',
      replica_id: 0,
    });
  });

  it('give each replica a world-size slice and lock all of it', async () => {
    const p = await plan(TWO_REPLICAS);
    const stage = p.stages[0]!;
    expect(stage.devices_per_replica).toBe(2);
    expect(stage.replicas.map((r) => r.physical_devices)).toEqual([
      ['0', '1'],
      ['2', '3'],
    ]);
    expect(stage.replicas.map((r) => r.lock_devices)).toEqual([
      ['0', '1'],
      ['2', '3'],
    ]);
    // Two replicas: not inline, each is its own process.
    expect(stage.replicas.every((r) => r.worker.inline !== true)).toBe(true);
  });

  it('refuse a stage with fewer devices than its world size', async () => {
    const err = await plan(
      TWO_REPLICAS.replace('devices: "0,1", num_replicas: 2', 'devices: "5", num_replicas: 1'),
    ).catch((e: unknown) => e);
    expect(isOmniError(err) && err.code).toBe('OMNI_PLAN_DEVICES');
    if (isOmniError(err)) expect(err.message).toMatch(/2/);
  });

  it('report an unknown sampling param at its line', async () => {
    const err = await plan(TWO_REPLICAS.replace('num_inference_steps: 4', 'num_inference_step: 4')).catch(
      (e: unknown) => e,
    );
    expect(isOmniError(err) && err.code).toBe('OMNI_CONFIG_INVALID');
    if (isOmniError(err)) {
      expect(err.location?.line).toBe(8);
      expect(err.hint).toContain('num_inference_steps');
    }
  });

  it('run one stage × one replica inline unless --no-inline, and warn that the engine is the reference one', async () => {
    const one = TWO_REPLICAS.replace('devices: "0,1", num_replicas: 2', 'devices: "0,1"');
    const inline = await plan(one);
    expect(inline.stages[0]!.replicas[0]!.worker.inline).toBe(true);
    expect(inline.warnings.map((w) => w.code)).toContain('OMNI_WARN_REFERENCE_ENGINE');
    const separate = await plan(one, true);
    expect(separate.stages[0]!.replicas[0]!.worker.inline).toBeUndefined();
  });
});
