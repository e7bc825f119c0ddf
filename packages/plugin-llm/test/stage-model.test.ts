/**
 * A `model` under a stage's engine_args: upstream replaces it with the pipeline's model
 * (`build_engine_args_dict` sets `d.model = model`) without a word; here the same happens, with a warning at its line.
 */
import { Omnistage, loadPipelineConfig, planPipeline } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { llmPlugin } from '../src/llm-plugin.js';

async function plan(text: string, model?: string) {
  const omni = new Omnistage({ plugins: [llmPlugin()] });
  const config = await loadPipelineConfig({ text, path: '/cfg/stage-model.yaml' });
  return planPipeline(omni, config, { platform: 'cpu', env: {}, ...(model === undefined ? {} : { model }) });
}

const file = (stageModel: string) => `model: Qwen/Qwen2.5-0.5B-Instruct
stage_args:
  - stage_id: 0
    engine: vllm
    runtime: { devices: "0" }
    engine_args:
      max_model_len: 2048
      model: ${stageModel}
`;

describe('a model named under a stage', () => {
  it('is replaced by the pipeline model, as upstream does, and the plan says so at its line', async () => {
    const p = await plan(file('meta-llama/Llama-3.2-1B'));
    const warning = p.warnings.find((w) => w.code === 'OMNI_WARN_STAGE_MODEL_OVERRIDDEN');
    expect(warning).toMatchObject({ file: '/cfg/stage-model.yaml', line: 8, col: 14 });
    expect(warning?.message).toBe(
      'stage 0: engine_args.model "meta-llama/Llama-3.2-1B" is not used: every stage runs the pipeline\'s model ("Qwen/Qwen2.5-0.5B-Instruct")',
    );
    expect(warning?.hint).toContain('model_subdir');
    const argv = p.stages[0]!.replicas[0]!.worker.args;
    expect(argv.slice(0, 2)).toEqual(['serve', 'Qwen/Qwen2.5-0.5B-Instruct']);
    expect(argv).not.toContain('meta-llama/Llama-3.2-1B');
  });

  it('--model wins over both; a stage model equal to the pipeline model is not worth a warning', async () => {
    const p = await plan(file('meta-llama/Llama-3.2-1B'), 'my/finetune');
    expect(p.warnings.filter((w) => w.code === 'OMNI_WARN_STAGE_MODEL_OVERRIDDEN')[0]?.message).toContain(
      '("my/finetune")',
    );
    expect(p.stages[0]!.replicas[0]!.worker.args[1]).toBe('my/finetune');
    const same = await plan(file('Qwen/Qwen2.5-0.5B-Instruct'));
    expect(same.warnings.map((w) => w.code)).not.toContain('OMNI_WARN_STAGE_MODEL_OVERRIDDEN');
  });
});
