/**
 * The reference engine's latent output at realistic widths: a real replica process (the built
 * plugin's dist/reference/worker.js) with `hidden_size: 262144` makes a 16-token latent of 16 MiB
 * (it used to fail from 131072 on, "Maximum call stack size exceeded"), and the bytes the caller
 * gets are the hidden states generate.ts computes, row by row.
 */
import { Omnistage, bringUp, createRouter, loadPipelineConfig, planPipeline } from '@omnistage/core';
import type { RunningPipeline } from '@omnistage/core';
import { afterEach, describe, expect, it } from 'vitest';
import { llmPlugin } from '@omnistage/plugin-llm';
import { generateTokens } from '../src/reference/generate.js';
import { removeDir, tempDir } from './vllm-fixture.js';

const HIDDEN = 262144;
const TOKENS = 16;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const yaml = `stage_args:
  - stage_id: 0
    stage_type: llm
    engine: reference
    runtime: { devices: "0" }
    engine_args: { model_stage: thinker, engine_output_type: latent, hidden_size: ${HIDDEN} }
    final_output: true
    final_output_type: text
    default_sampling_params: { temperature: 0.0, max_tokens: ${TOKENS}, seed: 7 }
`;

async function up(): Promise<RunningPipeline> {
  const lockDir = await tempDir('latent-locks-');
  const omni = new Omnistage({ plugins: [llmPlugin()], lockDir });
  const config = await loadPipelineConfig({ text: yaml, path: '/cfg/latent.yaml' });
  const plan = await planPipeline(omni, config, { platform: 'cpu', purpose: 'launch', env: {} });
  const started = bringUp(omni, plan, { stopGraceMs: 2_000, stageInitTimeoutS: 60 });
  cleanups.push(async () => {
    await started.then(
      (p) => p.stop('test cleanup'),
      () => undefined,
    );
    await removeDir(lockDir);
  });
  return started;
}

describe('reference engine latents', () => {
  it(`makes a ${TOKENS} × ${HIDDEN} float32 latent (16 MiB) whose rows are the generated hidden states`, async () => {
    const pipeline = await up();
    const prompt = 'a prompt whose thinker latent is large';
    const [out] = await createRouter(pipeline).complete(prompt);
    const data = out!.data as { token_ids: number[]; tensor: { size: number; shape: number[]; data_base64: string } };
    const expected = [
      ...generateTokens(
        prompt,
        { temperature: 0.0, max_tokens: TOKENS, seed: 7 },
        {
          modelStage: 'thinker',
          hiddenSize: HIDDEN,
        },
      ),
    ];
    expect(data.tensor.shape).toEqual([expected.length, HIDDEN]);
    expect(data.tensor.size).toBe(expected.length * HIDDEN * 4);
    const bytes = Buffer.from(data.tensor.data_base64, 'base64');
    const got = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    expected.forEach((t, row) => {
      const slice = got.subarray(row * HIDDEN, (row + 1) * HIDDEN);
      expect(Buffer.from(slice.buffer, slice.byteOffset, slice.byteLength).equals(Buffer.from(t.hidden!.buffer))).toBe(
        true,
      );
    });
  });
});
