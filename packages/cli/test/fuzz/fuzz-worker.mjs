// Runs one configuration input at a time through the real loader and planner (reference engines,
// platform cpu) and reports how it ended. Runs in a worker thread so that the harness can stop an
// input that hangs the event loop and cap the memory one input may take.
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { Omnistage, isOmniError, loadPipelineConfig, planPipeline } from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';

const readFile = (path) => readFileSync(path, 'utf8');

async function runOne({ text, path, stageOverrides }) {
  const config = await loadPipelineConfig(
    { text, path },
    { platform: 'cpu', readFile, ...(stageOverrides === undefined ? {} : { stageOverrides }) },
  );
  const omni = new Omnistage({ plugins: [llmPlugin(), diffusionPlugin(), kvConnectorPlugin()] });
  await planPipeline(omni, config, { platform: 'cpu', engine: 'reference', model: 'fuzz-model', env: {} });
}

parentPort.on('message', async (input) => {
  const t0 = performance.now();
  let outcome;
  try {
    await runOne(input);
    outcome = { kind: 'ok' };
  } catch (err) {
    outcome = isOmniError(err)
      ? {
          kind: 'error',
          code: err.code,
          exitCode: err.exitCode,
          located: err.location !== undefined || typeof err.context?.field === 'string',
          message: err.message.slice(0, 300),
        }
      : { kind: 'crash', message: String(err?.stack ?? err).slice(0, 600) };
  }
  parentPort.postMessage({
    id: input.id,
    ms: performance.now() - t0,
    heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
    ...outcome,
  });
});
