// Time to first audio of the talking pipeline, streamed (sentence by sentence, async_chunk: true as
// pipeline.yaml says) against speaking the whole text at the end (the same file, async_chunk off).
//
//   node examples/talking-pipeline/first-audio.mjs [--rounds=3]      (from the repository root, after a build)
//
// Prints: talking-pipeline first_audio_ms streamed=<p50> whole=<p50> llm_done_ms=<p50> rounds=N
import { dirname, join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Omnistage, bringUp, createRouter, loadPipelineConfig, newRunId, planPipeline } from '@omnistage/core';
import { llmPlugin } from '@omnistage/plugin-llm';
import { pythonPlugin } from '@omnistage/plugin-python';
import speechStage from './speech-stage.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const rounds = Number(/^--rounds=(\d+)$/.exec(process.argv[2] ?? '')?.[1] ?? 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Brings the pipeline up with async_chunk as given; per request: first audio, and the LLM's end (ms). */
export async function measure(asyncChunk, prompts) {
  const lockDir = mkdtempSync(join(tmpdir(), 'talking-locks-'));
  const omni = new Omnistage({ plugins: [llmPlugin(), pythonPlugin(), speechStage()], lockDir });
  const config = await loadPipelineConfig(join(here, 'pipeline.yaml'), { platform: 'cpu' });
  config.async_chunk = asyncChunk;
  const plan = await planPipeline(
    omni,
    { ...config, plugins: [] },
    { platform: 'cpu', purpose: 'launch', runId: newRunId() },
  );
  const pipeline = await bringUp(omni, plan, { stopGraceMs: 2000 });
  const router = createRouter(pipeline);
  try {
    const results = [];
    for (const prompt of prompts) {
      const started = performance.now();
      let firstAudio = null;
      let llmDone = null;
      const order = [];
      for await (const out of router.generate(prompt)) {
        const at = performance.now() - started;
        if (out.stage_id === 1 && firstAudio === null) firstAudio = at;
        if (out.stage_id === 0 && out.kind === 'final') llmDone = at;
        order.push(`${out.stage_id}:${out.kind}:${out.data?.kind ?? ''}`);
      }
      results.push({ firstAudio, llmDone, order });
    }
    return results;
  } finally {
    await pipeline.stop('measured');
    rmSync(lockDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const prompts = Array.from({ length: rounds }, (_, i) => `tell me about the sea, take ${i}`);
  const streamed = await measure(true, prompts);
  const whole = await measure(false, prompts);
  console.log(
    `talking-pipeline first_audio_ms streamed=${median(streamed.map((r) => r.firstAudio)).toFixed(0)} whole=${median(whole.map((r) => r.firstAudio)).toFixed(0)} llm_done_ms=${median(streamed.map((r) => r.llmDone)).toFixed(0)} rounds=${rounds}`,
  );
}
