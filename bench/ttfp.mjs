// Time to first audio (TTFP) with and without streaming edges (async_chunk): a thinker -> talker
// -> code2wav pipeline of reference engines, each stage about 1 s (40 tokens at 25 ms).
//
//   npx turbo run build --output-logs=errors-only && node bench/ttfp.mjs [--rounds=3]
//
// Prints, per setting and concurrency C (1 and 8):
//   ttfp pipeline=thinker-talker-code2wav async_chunk=true|false concurrency=C ttfp_p50_ms=… e2e_p50_ms=… audio_bytes=…
// then, per C, the ratios against their targets:
//   ttfp_ratio concurrency=C ttfp=<on/off> (target <= 0.35 at C=1, <= 0.5 at C=8) e2e=<on/off> (target <= 0.9) same_audio=true|false
//
// TTFP: from generate() to the first audio chunk of code2wav; e2e: to the end of the request;
// audio_bytes: the PCM bytes of every audio chunk of one request (the same either way: the
// reference engines are causal, so streaming changes when audio comes, not what it is).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const corePath = join(root, 'packages/core/dist/index.js');
const llmPath = join(root, 'packages/plugin-llm/dist/index.js');
for (const p of [corePath, llmPath]) {
  if (!existsSync(p)) {
    console.error(`missing ${p}: build first (npx turbo run build)`);
    process.exit(1);
  }
}
const core = await import(corePath);
const { llmPlugin } = await import(llmPath);
const ROUNDS = Number(/^--rounds=(\d+)$/.exec(process.argv[2] ?? '')?.[1] ?? 3);

const stage = (id, modelStage, extra) => `  - stage_id: ${id}
    stage_type: llm
    engine: reference
    runtime:
      devices: "${id}"
    engine_args:
      model_stage: ${modelStage}
      token_delay_ms: 25
${extra}    default_sampling_params:
      temperature: 0.0
      max_tokens: 40
      seed: 42
`;
const processors = 'vllm_omni.model_executor.stage_input_processors.qwen3_omni';
const pipelineYaml = (asyncChunk) => `async_chunk: ${asyncChunk}
runtime:
  connectors:
    codec_shm:
      name: SharedMemoryConnector
      extra:
        initial_codec_chunk_frames: 4
        codec_chunk_frames: 25
stage_args:
${stage(0, 'thinker', `      custom_process_next_stage_input_func: ${processors}.thinker2talker_async_chunk\n    final_output: true\n    final_output_type: text\n`)}${stage(1, 'talker', `      custom_process_next_stage_input_func: ${processors}.talker2code2wav_async_chunk\n    engine_input_source: [0]\n`)}${stage(2, 'code2wav', `      engine_output_type: audio\n    engine_input_source: [1]\n    input_connectors:\n      from_stage_1: codec_shm\n    final_output: true\n    final_output_type: audio\n`)}`;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** One request: its TTFP, its end to end, and the PCM of its audio chunks. */
async function one(router, i) {
  const started = performance.now();
  let ttfp = null;
  const pcm = [];
  for await (const out of router.generate(`a question about lighthouse number ${i}`)) {
    if (out.stage_id === 2 && out.data?.kind === 'audio_chunk') {
      ttfp ??= performance.now() - started;
      pcm.push(Buffer.from(out.data.data_base64, 'base64'));
    }
  }
  return { ttfp, e2e: performance.now() - started, pcm: Buffer.concat(pcm) };
}

const dir = mkdtempSync(join(tmpdir(), 'omni-ttfp-'));
const results = new Map();
try {
  for (const asyncChunk of [false, true]) {
    const file = join(dir, `pipeline-${asyncChunk}.yaml`);
    writeFileSync(file, pipelineYaml(asyncChunk));
    const omni = new core.Omnistage({ plugins: [llmPlugin()], lockDir: join(dir, 'locks') });
    const config = await core.loadPipelineConfig(file, { platform: 'cpu' });
    const plan = await core.planPipeline(omni, config, {
      platform: 'cpu',
      purpose: 'launch',
      runId: core.newRunId(),
      env: { PATH: process.env.PATH },
    });
    const pipeline = await core.bringUp(omni, plan, { stopGraceMs: 2000 });
    try {
      const router = core.createRouter(pipeline);
      await one(router, -1); // warm-up
      for (const c of [1, 8]) {
        const runs = [];
        for (let r = 0; r < ROUNDS; r++)
          runs.push(...(await Promise.all(Array.from({ length: c }, (_, i) => one(router, i)))));
        const row = {
          ttfp: median(runs.map((x) => x.ttfp)),
          e2e: median(runs.map((x) => x.e2e)),
          audio: runs[0].pcm,
        };
        results.set(`${asyncChunk}/${c}`, row);
        console.log(
          `ttfp pipeline=thinker-talker-code2wav async_chunk=${asyncChunk} concurrency=${c} ttfp_p50_ms=${row.ttfp.toFixed(0)} e2e_p50_ms=${row.e2e.toFixed(0)} audio_bytes=${row.audio.length}`,
        );
      }
    } finally {
      await pipeline.stop('bench done');
    }
  }
  for (const c of [1, 8]) {
    const off = results.get(`false/${c}`);
    const on = results.get(`true/${c}`);
    console.log(
      `ttfp_ratio concurrency=${c} ttfp=${(on.ttfp / off.ttfp).toFixed(3)} (target <= ${c === 1 ? '0.35' : '0.5'}) e2e=${(on.e2e / off.e2e).toFixed(3)} (target <= 0.9) same_audio=${on.audio.equals(off.audio)}`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
