// Payload bytes parked in shared memory while N concurrent requests go through a producer → relay →
// consumer pipeline (three stages, shm payloads of 96 KiB, the consumer holds each 20 ms), with the
// router's admission (its default bound per replica, or PARKED_BOUND) and without it (unbounded).
//   node bench/parked.mjs            PARKED_N=1000,5000 (comma list), PARKED_ORDER=bounded-first
// Prints, per N and mode:
//   parked requests=<n> max_inflight_per_replica=<m> peak_files=<f> peak_mib=<x> seconds=<s>
// peak_*: the most payload files (pool segments excluded: resident either way) seen at once in the
// run's payload directory, sampled every 20 ms.
import { readdirSync, statSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.PARKED_ROOT ?? dirname(dirname(fileURLToPath(import.meta.url)));
const core = await import(join(root, 'packages/core/dist/index.js'));
const BOUND = process.env.PARKED_BOUND === undefined ? undefined : Number(process.env.PARKED_BOUND);
const WORKER = join(root, 'packages/core/test/connectors/fixtures/payload-worker.mjs');
const NS = (process.env.PARKED_N ?? '1000,5000').split(',').map(Number);
const SIZE = 96 * 1024;

const plugin = core.definePlugin({
  name: 'payload-bench',
  apply(omni) {
    omni.defineStageType({ name: 'payload', defaultEngine: 'fixture', devicesPerReplica: () => 1 });
    omni.defineEngine({
      stageType: 'payload',
      name: 'fixture',
      resolveWorker: () => ({ command: process.execPath, args: [WORKER], env: {}, attach: 'control' }),
    });
  },
});

const dir = mkdtempSync(join(tmpdir(), 'omni-parked-'));
const yaml = join(dir, 'pipeline.yaml');
writeFileSync(
  yaml,
  `stage_args:
  - stage_id: 0
    stage_type: payload
    runtime: { devices: "0" }
    engine_args:
      omni_kv_config:
        connector_config: { type: SharedMemoryConnector, shm_threshold_bytes: 1024, role: sender }
  - stage_id: 1
    stage_type: payload
    runtime: { devices: "1" }
    engine_args:
      relay: true
      omni_kv_config:
        connector_config: { type: SharedMemoryConnector, shm_threshold_bytes: 1024, role: sender }
    engine_input_source: [0]
  - stage_id: 2
    stage_type: payload
    runtime: { devices: "2" }
    engine_args: { hold_ms: ${process.env.PARKED_HOLD_MS ?? 20} }
    engine_input_source: [1]
    final_output: true
`,
);

function parked(payloadDir) {
  let files = 0;
  let bytes = 0;
  let names = [];
  try {
    names = readdirSync(payloadDir);
  } catch {
    return { files: 0, bytes: 0 }; // created with the first payload
  }
  // Payload keys only: a pool segment ('=' in its name) is resident memory either way.
  for (const name of names.filter((n) => !n.includes('='))) {
    try {
      const st = statSync(join(payloadDir, name));
      if (st.isFile()) {
        files++;
        bytes += st.size;
      }
    } catch {
      // freed between the listing and the stat
    }
  }
  return { files, bytes };
}

async function run(N, maxInflightPerReplica) {
  const omni = new core.Omnistage({ plugins: [plugin], lockDir: join(dir, 'locks') });
  const config = await core.loadPipelineConfig(yaml, { platform: 'cpu' });
  const plan = await core.planPipeline(omni, config, {
    platform: 'cpu',
    purpose: 'launch',
    runId: core.newRunId(),
    env: { PATH: process.env.PATH },
  });
  omni.events.on('replica:unresponsive', (e) =>
    console.error(`parked: stage ${e.stage_id} replica ${e.replica_id} unresponsive: ${e.reason}`),
  );
  const pipeline = await core.bringUp(omni, plan, { stopGraceMs: 2000 });
  try {
    const router = new core.PipelineRouter(
      omni,
      pipeline,
      maxInflightPerReplica === undefined ? {} : { maxInflightPerReplica },
    );
    let peak = { files: 0, bytes: 0 };
    const sampler = setInterval(() => {
      const p = parked(pipeline.payloads.dir);
      if (p.bytes > peak.bytes) peak = p;
    }, 20);
    const started = performance.now();
    await Promise.all(Array.from({ length: N }, (_, i) => router.complete({ size: SIZE, seed: i % 251 })));
    clearInterval(sampler);
    const seconds = (performance.now() - started) / 1000;
    const m =
      maxInflightPerReplica === undefined
        ? core.DEFAULT_MAX_INFLIGHT_PER_REPLICA
        : Number.isFinite(maxInflightPerReplica)
          ? maxInflightPerReplica
          : 'unbounded';
    console.log(
      `parked requests=${N} max_inflight_per_replica=${m} peak_files=${peak.files} peak_mib=${(peak.bytes / 2 ** 20).toFixed(1)} seconds=${seconds.toFixed(2)}`,
    );
  } finally {
    await pipeline.stop('bench done');
  }
}

try {
  const order =
    process.env.PARKED_ORDER === 'bounded-first'
      ? [BOUND, Number.POSITIVE_INFINITY]
      : [Number.POSITIVE_INFINITY, BOUND];
  if (process.env.PARKED_MODES === 'unbounded') order.splice(order.indexOf(BOUND), 1);
  if (process.env.PARKED_MODES === 'bounded') order.splice(order.indexOf(Number.POSITIVE_INFINITY), 1);
  for (const n of NS) for (const m of order) await run(n, m);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
