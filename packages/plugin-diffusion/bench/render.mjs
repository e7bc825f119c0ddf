// Times the reference diffusion renderer: `render 512x512 steps=20 ms=<median>`.
// Needs the built package (`npm run build -w @omnistage/plugin-diffusion`); run with
// `node packages/plugin-diffusion/bench/render.mjs [width] [height] [steps] [runs]`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const modulePath = fileURLToPath(new URL('../dist/reference-renderer.js', import.meta.url));
if (!existsSync(modulePath)) {
  console.error(`missing ${modulePath}: build the package first (npm run build -w @omnistage/plugin-diffusion)`);
  process.exit(1);
}
const { renderReferenceImage } = await import(modulePath);

const [width = 512, height = 512, steps = 20, runs = 15] = process.argv.slice(2).map(Number);
const opts = { conditioning: 'a red fox in a snowy forest, golden hour', seed: 42, steps, width, height, guidance: 5 };

// Warm-up: the first calls include JIT compilation, which a long-running engine pays once.
for (let i = 0; i < 3; i++) renderReferenceImage({ ...opts, seed: i });

const times = [];
let bytes = 0;
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  bytes = renderReferenceImage({ ...opts, seed: 1000 + i }).length;
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`render ${width}x${height} steps=${steps} ms=${median.toFixed(1)}`);
console.log(`  runs=${runs} min=${times[0].toFixed(1)} max=${times[times.length - 1].toFixed(1)} png_bytes=${bytes}`);
