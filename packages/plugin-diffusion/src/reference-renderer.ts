import { OmniError } from '@omnistage/core';
import { encodePng } from './png.js';
import { createRandom, seedWords } from './seeded-random.js';

/** Inputs of {@link renderReferenceImage}. */
export interface RenderReferenceImageOptions {
  /** The prompt text, or the conditioning tensor an upstream stage sent (hashed as raw float32 bytes). */
  conditioning: string | Float32Array;
  /** Any safe integer; same seed + same inputs → byte-identical PNG. */
  seed: number;
  /** Denoising steps (≥ 1). Fewer steps leave more residual noise, as with a real sampler. */
  steps: number;
  width: number;
  height: number;
  /** Classifier-free guidance scale; ≤ 1 means no guidance (default 1). */
  guidance?: number;
  /** Pushes the image away from this prompt's field when guidance > 1. */
  negativePrompt?: string;
}

/** Largest image the reference engine renders (memory ≈ 40 bytes per pixel while rendering). */
const MAX_PIXELS = 4096 * 4096;
const MAX_SIDE = 16384;
const MAX_STEPS = 1000;

/**
 * The reference diffusion engine's renderer: a deterministic stand-in for a DiT + VAE that needs no
 * GPU. It builds a smooth "target" image from the conditioning — a two-colour gradient, a few
 * coloured blobs and waves, all drawn from a PRNG keyed by a hash of the conditioning (so different
 * prompts get different palettes and shapes) with blob positions jittered by the seed (so seeds
 * change the composition, as they do in a real model) — then starts from seeded Gaussian-like noise
 * and runs `steps` denoising updates: each step moves the image towards the target along a
 * decreasing noise schedule (`x ← target + σₖ/σₖ₋₁ · (x − target) + ηₖ · noise`), leaving a residual
 * grain that shrinks with more steps. Guidance > 1 extrapolates from an unconditional field (the
 * negative prompt's field, or the target's mean colour) like classifier-free guidance.
 *
 * Returns a PNG (RGB, 8 bit). All maths runs over flat typed arrays — no per-pixel allocation —
 * so 512×512 with 20 steps takes well under a second on one core (see `bench/render.mjs`).
 */
export function renderReferenceImage(opts: RenderReferenceImageOptions): Buffer {
  const { width, height, steps, seed } = opts;
  const guidance = opts.guidance ?? 1;
  validate(opts, guidance);

  const condBytes =
    typeof opts.conditioning === 'string'
      ? Buffer.from(opts.conditioning, 'utf8')
      : // Raw float32 bytes: hosts are little-endian in practice, so this is stable across them.
        new Uint8Array(opts.conditioning.buffer, opts.conditioning.byteOffset, opts.conditioning.byteLength);
  const kind = typeof opts.conditioning === 'string' ? 'text' : 'tensor';
  const n = width * height * 3;
  const grid = new Grid(width, height);

  // Target field ("what the prompt asks for"), seed only moves things around.
  const target = new Float32Array(n);
  paintField(
    target,
    grid,
    createRandom(seedWords('field', kind, condBytes)),
    createRandom(seedWords('layout', kind, condBytes, seed)),
  );

  const weight = guidanceWeight(guidance);
  if (weight !== 1) {
    const uncond = new Float32Array(n);
    if (opts.negativePrompt !== undefined && opts.negativePrompt !== '') {
      const neg = Buffer.from(opts.negativePrompt, 'utf8');
      paintField(
        uncond,
        grid,
        createRandom(seedWords('field', 'text', neg)),
        createRandom(seedWords('layout', 'text', neg, seed)),
      );
    } else {
      fillWithMeanColour(uncond, target);
    }
    extrapolate(target, uncond, weight);
  }

  // Initial latent: noise that depends on the seed only, like a torch.Generator-seeded latent.
  const noiseRng = createRandom(seedWords('noise', seed));
  const noise = new Float32Array(n);
  fillNoise(noise, noiseRng);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = 0.5 + 0.25 * (noise[i] as number);

  // Noise schedule: σ₀ = 1 → σ_steps = σmin, quadratic (most change early, fine detail late).
  const sigmaMin = Math.min(0.6, 0.6 / steps);
  let prevSigma = 1;
  for (let k = 1; k <= steps; k++) {
    const progress = 1 - k / steps;
    const sigma = sigmaMin + (1 - sigmaMin) * progress * progress;
    const ratio = sigma / prevSigma;
    const eta = 0.08 * sigma; // fresh noise re-injected each step, shrinking with σ (ancestral sampling)
    // Reuse the noise buffer at a per-step offset instead of drawing n fresh values per step.
    denoiseStep(x, target, noise, ratio, eta, Math.floor(noiseRng() * n));
    prevSigma = sigma;
  }

  return encodePng(width, height, toBytes(x));
}

/** Classifier-free guidance in place: `cond ← uncond + weight · (cond − uncond)`. */
function extrapolate(cond: Float32Array, uncond: Float32Array, weight: number): void {
  for (let i = 0; i < cond.length; i++) {
    const u = uncond[i] as number;
    cond[i] = u + weight * ((cond[i] as number) - u);
  }
}

/** [0, 1] floats → 0..255 bytes; Uint8ClampedArray rounds and clamps on assignment. */
function toBytes(x: Float32Array): Uint8Array {
  const pixels = new Uint8ClampedArray(x.length);
  for (let i = 0; i < x.length; i++) pixels[i] = (x[i] as number) * 255;
  return new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
}

/**
 * One sampler update over the whole image: `x ← target + ratio · (x − target) + eta · noise[i+offset]`,
 * the noise index wrapping around. Kept as its own small function so V8 optimises the hot loop on
 * its own rather than as part of the large caller.
 */
function denoiseStep(
  x: Float32Array,
  target: Float32Array,
  noise: Float32Array,
  ratio: number,
  eta: number,
  offset: number,
): void {
  const n = x.length;
  // Two straight runs (before and after the wrap) instead of a wrap test per element.
  const firstRun = n - offset;
  for (let i = 0; i < firstRun; i++) {
    const t = target[i] as number;
    x[i] = t + ratio * ((x[i] as number) - t) + eta * (noise[i + offset] as number);
  }
  for (let i = firstRun; i < n; i++) {
    const t = target[i] as number;
    x[i] = t + ratio * ((x[i] as number) - t) + eta * (noise[i - firstRun] as number);
  }
}

/**
 * Zero-mean, unit-variance noise: the sum of two uniforms, scaled. Triangular rather than Gaussian,
 * which is indistinguishable as image grain and needs half the PRNG calls of Box–Muller.
 */
function fillNoise(out: Float32Array, rnd: () => number): void {
  for (let i = 0; i < out.length; i++) out[i] = (rnd() + rnd() - 1) * 2.449489742783178;
}

function validate(opts: RenderReferenceImageOptions, guidance: number): void {
  const fail = (message: string, hint: string): never => {
    throw new OmniError('OMNI_REQUEST_FAILED', message, { hint, context: { engine: 'reference', phase: 'render' } });
  };
  const { width, height, steps, seed } = opts;
  if (
    !Number.isSafeInteger(width) ||
    !Number.isSafeInteger(height) ||
    width < 1 ||
    height < 1 ||
    width > MAX_SIDE ||
    height > MAX_SIDE ||
    width * height > MAX_PIXELS
  ) {
    fail(
      `the reference diffusion engine cannot render ${String(width)}×${String(height)}`,
      `use whole-number sizes from 1 to ${MAX_SIDE}, at most ${MAX_PIXELS} pixels in all`,
    );
  }
  if (!Number.isSafeInteger(steps) || steps < 1 || steps > MAX_STEPS) {
    fail(
      `num_inference_steps must be an integer from 1 to ${MAX_STEPS}, got ${String(steps)}`,
      'set num_inference_steps in the request or the stage default_sampling_params',
    );
  }
  if (!Number.isSafeInteger(seed))
    fail(`seed must be a safe integer, got ${String(seed)}`, 'use a whole number between -(2^53-1) and 2^53-1');
  if (!Number.isFinite(guidance))
    fail(`guidance scale must be a finite number, got ${String(guidance)}`, 'use e.g. guidance_scale: 4.5');
  if (typeof opts.conditioning !== 'string' && !(opts.conditioning instanceof Float32Array)) {
    fail(
      'conditioning must be prompt text or a Float32Array',
      'pass the prompt, or the conditioning tensor from the previous stage',
    );
  }
}

/** CFG weight applied to (cond − uncond); tempered so usual scales (4–8) stay in gamut. */
function guidanceWeight(guidance: number): number {
  if (guidance <= 1) return 1;
  return Math.min(3, 1 + 0.12 * (guidance - 1));
}

/** Normalised coordinates per column / row, in [-1, 1] (0 for a one-pixel side). */
class Grid {
  readonly u: Float64Array;
  readonly v: Float64Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.u = Float64Array.from({ length: width }, (_, x) => (width === 1 ? 0 : (2 * x) / (width - 1) - 1));
    this.v = Float64Array.from({ length: height }, (_, y) => (height === 1 ? 0 : (2 * y) / (height - 1) - 1));
  }
}

/** A saturated RGB colour in [0, 1] from hue/saturation/value drawn from `rnd`. */
function randomColour(rnd: () => number): [number, number, number] {
  const h = rnd() * 6;
  const s = 0.45 + 0.5 * rnd();
  const v = 0.35 + 0.6 * rnd();
  const i = Math.floor(h);
  const f = h - i;
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  switch (i % 6) {
    case 0:
      return [v, t, p];
    case 1:
      return [q, v, p];
    case 2:
      return [p, v, t];
    case 3:
      return [p, q, v];
    case 4:
      return [t, p, v];
    default:
      return [v, p, q];
  }
}

const MAX_BLOBS = 6;
/** The pixel loop below unrolls exactly two waves. */
const WAVES = 2;

/**
 * Paints the procedural image of one conditioning into `out` (interleaved RGB floats). `rnd`
 * decides everything about the look (palette, shapes, frequencies); `jitter` (seed-keyed) only
 * moves blobs and wave phases. Every term is separable in x and y, so per-column and per-row
 * tables replace almost all transcendental calls in the pixel loop.
 */
function paintField(out: Float32Array, grid: Grid, rnd: () => number, jitter: () => number): void {
  // The draws happen in this order (background, waves, blobs): the same seed must paint the same image.
  const background = gradientTables(grid, rnd);
  const waves = waveTables(grid, rnd, jitter);
  const blobs = blobTables(grid, rnd, jitter);
  const { width: w, height: h } = grid;
  const { gx, gy, from, delta } = background;
  const { sinX, cosX, sinY, cosY, tint } = waves;
  const rowBlob = new Float64Array(blobs.count);
  for (let y = 0; y < h; y++) {
    const ty = gy[y] as number;
    for (let k = 0; k < blobs.count; k++) rowBlob[k] = blobs.y[k * h + y] as number;
    const s0 = sinY[y] as number;
    const c0y = cosY[y] as number;
    const s1 = sinY[h + y] as number;
    const c1y = cosY[h + y] as number;
    let o = y * w * 3;
    for (let x = 0; x < w; x++) {
      const t = ty + (gx[x] as number);
      const w0 = (sinX[x] as number) * c0y + (cosX[x] as number) * s0;
      const w1 = (sinX[w + x] as number) * c1y + (cosX[w + x] as number) * s1;
      let r = from[0] + delta[0] * t + (tint[0] as number) * w0 + (tint[3] as number) * w1;
      let g = from[1] + delta[1] * t + (tint[1] as number) * w0 + (tint[4] as number) * w1;
      let b = from[2] + delta[2] * t + (tint[2] as number) * w0 + (tint[5] as number) * w1;
      for (let k = 0; k < blobs.count; k++) {
        const a = (blobs.x[k * w + x] as number) * (rowBlob[k] as number);
        if (a < 1e-4) continue; // far from the blob: skip three blends
        r += ((blobs.colour[k * 3] as number) - r) * a;
        g += ((blobs.colour[k * 3 + 1] as number) - g) * a;
        b += ((blobs.colour[k * 3 + 2] as number) - b) * a;
      }
      out[o++] = r;
      out[o++] = g;
      out[o++] = b;
    }
  }
}

/** Background: a linear gradient between two colours at a random angle (position t = gx[x] + gy[y]). */
function gradientTables(
  grid: Grid,
  rnd: () => number,
): { gx: Float64Array; gy: Float64Array; from: [number, number, number]; delta: [number, number, number] } {
  const c0 = randomColour(rnd);
  const c1 = randomColour(rnd);
  const angle = rnd() * 2 * Math.PI;
  return {
    gx: Float64Array.from(grid.u, (ux) => 0.35 * Math.cos(angle) * ux),
    gy: Float64Array.from(grid.v, (vy) => 0.5 + 0.35 * Math.sin(angle) * vy),
    from: c0,
    delta: [c1[0] - c0[0], c1[1] - c0[1], c1[2] - c0[2]],
  };
}

/** Waves: amplitude × tint × sin(kx·u + ky·v + φ) = amplitude × tint × (sA·cB + cA·sB). */
function waveTables(grid: Grid, rnd: () => number, jitter: () => number) {
  const { width: w, height: h, u, v } = grid;
  const sinX = new Float64Array(WAVES * w);
  const cosX = new Float64Array(WAVES * w);
  const sinY = new Float64Array(WAVES * h);
  const cosY = new Float64Array(WAVES * h);
  const tint = new Float64Array(WAVES * 3);
  for (let k = 0; k < WAVES; k++) {
    const kx = Math.PI * (0.5 + 5 * rnd());
    const ky = Math.PI * (0.5 + 5 * rnd());
    const phase = rnd() * 2 * Math.PI + jitter() * 1.5;
    const amp = 0.04 + 0.07 * rnd();
    tint.set(
      randomColour(rnd).map((t) => amp * (t - 0.5) * 2),
      k * 3,
    );
    for (let x = 0; x < w; x++) {
      const a = kx * (u[x] as number) + phase;
      sinX[k * w + x] = Math.sin(a);
      cosX[k * w + x] = Math.cos(a);
    }
    for (let y = 0; y < h; y++) {
      const b = ky * (v[y] as number);
      sinY[k * h + y] = Math.sin(b);
      cosY[k * h + y] = Math.cos(b);
    }
  }
  return { sinX, cosX, sinY, cosY, tint };
}

/** Blobs: Gaussian bumps alpha-blended over the background, exp(-dx²)·exp(-dy²) per axis. */
function blobTables(grid: Grid, rnd: () => number, jitter: () => number) {
  const { width: w, height: h, u, v } = grid;
  const count = 3 + Math.floor(rnd() * (MAX_BLOBS - 2));
  const x = new Float64Array(count * w);
  const y = new Float64Array(count * h);
  const colour = new Float64Array(count * 3);
  for (let k = 0; k < count; k++) {
    const cx = (rnd() * 2 - 1) * 0.7 + (jitter() * 2 - 1) * 0.3;
    const cy = (rnd() * 2 - 1) * 0.7 + (jitter() * 2 - 1) * 0.3;
    const rx = 0.15 + 0.35 * rnd();
    const ry = rx * (0.6 + 0.8 * rnd());
    const opacity = 0.55 + 0.35 * rnd();
    colour.set(randomColour(rnd), k * 3);
    for (let i = 0; i < w; i++) {
      const d = ((u[i] as number) - cx) / rx;
      x[k * w + i] = opacity * Math.exp(-d * d);
    }
    for (let j = 0; j < h; j++) {
      const d = ((v[j] as number) - cy) / ry;
      y[k * h + j] = Math.exp(-d * d);
    }
  }
  return { count, x, y, colour };
}

/** Fills `out` with the per-channel mean colour of `field` (the "unconditional" image). */
function fillWithMeanColour(out: Float32Array, field: Float32Array): void {
  let r = 0;
  let g = 0;
  let b = 0;
  for (let i = 0; i < field.length; i += 3) {
    r += field[i] as number;
    g += field[i + 1] as number;
    b += field[i + 2] as number;
  }
  const pixels = field.length / 3;
  r /= pixels;
  g /= pixels;
  b /= pixels;
  for (let i = 0; i < out.length; i += 3) {
    out[i] = r;
    out[i + 1] = g;
    out[i + 2] = b;
  }
}
