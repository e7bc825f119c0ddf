// Bring-up of co-located replicas with init phases (docs/protocol.md "Init phases").
//
//   npm run bench                              (builds first, then runs every bench file)
//   node bench/bringup-shared.mjs [--reps=3] [--load-ms=1000] [--profile-ms=200]
//
// Prints
//   bringup_shared n=3 load_ms=1000 profile_ms=200 omnistage_ms=<x> serial_ms=<y> ideal_ms=<z> ratio_to_ideal=<x/z>
// omnistage_ms: wall time of `bringUp` for three chained `llm` stages, engine `reference`, all on
//   virtual device 0, phase-aware (`init_phases: true`): each "loads" load_ms with the device held
//   shared, then "profiles" profile_ms inside its exclusive init window.
// serial_ms: the same with `init_phases: false` (the replicas do not declare phases, so each init
//   has the device alone: today's behaviour, and that of engines that do not follow phases).
// ideal_ms: load_ms + 3 x profile_ms + one spawn/attach (the median bring-up of one replica with
//   load_ms = profile_ms = 0): all three load at once, the profiles cannot overlap.
// Medians of --reps runs, alternating the two variants; `runs` lists every sample.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
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
const { Omnistage, loadPipelineConfig, planPipeline, bringUp } = await import(corePath);
const { llmPlugin } = await import(llmPath);

const argv = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([^=]+)=(.*)$/.exec(a);
    if (!m) {
      console.error(`unknown argument ${a} (use --reps=3 --load-ms=1000 --profile-ms=200)`);
      process.exit(2);
    }
    return [m[1], m[2]];
  }),
);
const REPS = Number(argv.reps ?? 3);
const LOAD_MS = Number(argv['load-ms'] ?? 1000);
const PROFILE_MS = Number(argv['profile-ms'] ?? 200);
const N = 3;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function yaml(n, args) {
  const stages = [];
  for (let i = 0; i < n; i++) {
    stages.push(`  - stage_id: ${i}
    stage_type: llm
    engine: reference
    runtime: { devices: "0" }
    engine_args: ${JSON.stringify({ model_stage: `s${i}`, max_num_seqs: 1, ...args })}
${i > 0 ? `    engine_input_source: [${i - 1}]\n` : ''}${i === n - 1 ? '    final_output: true\n    final_output_type: text\n' : ''}`);
  }
  return `stage_args:\n${stages.join('')}`;
}

/** One timed bring-up (plan not timed), torn down afterwards. */
async function once(n, args) {
  const lockDir = await mkdtemp(join(tmpdir(), 'omnistage-bench-locks-'));
  const omni = new Omnistage({ plugins: [llmPlugin()], lockDir });
  const config = await loadPipelineConfig(
    { text: yaml(n, args), path: join(root, 'bench', 'bringup-shared.yaml') },
    { platform: 'cpu' },
  );
  const plan = await planPipeline(omni, config, { platform: 'cpu', env: {}, purpose: 'launch' });
  const t0 = performance.now();
  const pipeline = await bringUp(omni, plan);
  const ms = performance.now() - t0;
  await pipeline.stop('bench');
  await rm(lockDir, { recursive: true, force: true });
  return ms;
}

const phased = { init_phases: true, load_ms: LOAD_MS, profile_ms: PROFILE_MS };
const serial = { ...phased, init_phases: false };
await once(1, {}); // warm-up: file cache, first spawn
const runs = { omnistage: [], serial: [], spawn_attach: [] };
for (let r = 0; r < REPS; r++) {
  runs.spawn_attach.push(await once(1, {}));
  if (r % 2 === 0) {
    runs.omnistage.push(await once(N, phased));
    runs.serial.push(await once(N, serial));
  } else {
    runs.serial.push(await once(N, serial));
    runs.omnistage.push(await once(N, phased));
  }
}
const x = median(runs.omnistage);
const y = median(runs.serial);
const z = LOAD_MS + N * PROFILE_MS + median(runs.spawn_attach);
const r0 = (v) => Math.round(v);
console.log(
  `bringup_shared n=${N} load_ms=${LOAD_MS} profile_ms=${PROFILE_MS} omnistage_ms=${r0(x)} serial_ms=${r0(y)} ideal_ms=${r0(z)} ratio_to_ideal=${(x / z).toFixed(3)}`,
);
console.log(
  `bringup_shared runs ${Object.entries(runs)
    .map(([k, v]) => `${k}=[${v.map(r0).join(',')}]`)
    .join(' ')}`,
);
