// Flow control on a streaming edge: the orchestrator's memory while a consumer stalls.
//
//   npx turbo run build --output-logs=errors-only && node bench/stream-flow.mjs [--chunks=10000] [--stall-ms=5000]
//
// Prints:
//   stream_flow chunks=N stall_ms=S rss_growth_mib=<x> received=<n> in_order=true|false producer_waited=<w>   target: rss_growth_mib <= 20, received = N
//
// A producer (packages/core/test/router/fixtures/flood-worker.mjs) writes N chunks of ~4 KiB (40 MiB for 10,000) as fast
// as its output window lets it; its consumer waits S ms before reading its input. The edge streams
// through a plugin's pass-through chunk processor. This process is the orchestrator: its RSS is
// sampled every 20 ms from before the request to its end; the growth is peak minus the level before
// (whole request, and the stall alone: after it, 40 MiB of chunks pass through and leave garbage).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const corePath = join(root, 'packages/core/dist/index.js');
const llmPath = join(root, 'packages/plugin-llm/dist/index.js');
const floodWorker = join(root, 'packages/core/test/router/fixtures/flood-worker.mjs');
for (const p of [corePath, llmPath]) {
  if (!existsSync(p)) {
    console.error(`missing ${p}: build first (npx turbo run build)`);
    process.exit(1);
  }
}
const core = await import(corePath);
const { llmPlugin } = await import(llmPath);
const arg = (name, fallback) => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? fallback : Number(hit.slice(name.length + 3));
};
const CHUNKS = arg('chunks', 10_000);
const STALL_MS = arg('stall-ms', 5_000);

const flood = core.definePlugin({
  name: 'bench-flood',
  apply(omni) {
    omni.defineEngine({
      stageType: 'llm',
      name: 'flood',
      streamsInput: true,
      resolveWorker: () => ({ command: process.execPath, args: [floodWorker], env: {}, attach: 'control' }),
    });
    omni.defineChunkProcessor({ name: 'flood_async_chunk', create: () => ({ chunk: (d) => [d], end: () => [] }) });
  },
});

const dir = mkdtempSync(join(tmpdir(), 'omni-stream-flow-'));
const file = join(dir, 'pipeline.yaml');
writeFileSync(
  file,
  `async_chunk: true
stage_args:
  - { stage_id: 0, stage_type: llm, engine: flood, runtime: { devices: "0" }, engine_args: { role: producer, pad: 4096, custom_process_next_stage_input_func: "x.flood_async_chunk" } }
  - { stage_id: 1, stage_type: llm, engine: flood, runtime: { devices: "1" }, engine_args: { role: consumer, stall_ms: ${STALL_MS} }, engine_input_source: [0], final_output: true }
`,
);
try {
  const omni = new core.Omnistage({ plugins: [llmPlugin(), flood], lockDir: join(dir, 'locks') });
  const config = await core.loadPipelineConfig(file, { platform: 'cpu' });
  const plan = await core.planPipeline(omni, config, {
    platform: 'cpu',
    purpose: 'launch',
    runId: core.newRunId(),
    env: { PATH: process.env.PATH },
  });
  const pipeline = await core.bringUp(omni, plan, { stopGraceMs: 2000 });
  try {
    globalThis.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    let stallPeak = before;
    const started = performance.now();
    const sampler = setInterval(() => {
      const rss = process.memoryUsage().rss;
      peak = Math.max(peak, rss);
      if (performance.now() - started < STALL_MS) stallPeak = Math.max(stallPeak, rss);
    }, 20);
    const [out] = await core.createRouter(pipeline).complete('go', { params: { 0: { count: CHUNKS } } });
    clearInterval(sampler);
    const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
    console.log(
      `stream_flow chunks=${CHUNKS} stall_ms=${STALL_MS} rss_growth_mib=${mib(peak - before)} rss_growth_during_stall_mib=${mib(stallPeak - before)} received=${out.data.count} in_order=${out.data.in_order}   target: rss_growth_mib <= 20, received = ${CHUNKS}`,
    );
  } finally {
    await pipeline.stop('bench done');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
