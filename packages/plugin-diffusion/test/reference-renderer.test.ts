import { isOmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { decodePngSize } from '../src/png-size.js';
import { renderReferenceImage } from '../src/reference-renderer.js';
import type { RenderReferenceImageOptions } from '../src/reference-renderer.js';
import { meanAbsDiff, readPng } from './png-reader.js';

const base: RenderReferenceImageOptions = {
  conditioning: 'a red fox in the snow',
  seed: 7,
  steps: 20,
  width: 64,
  height: 48,
};
const pixelsOf = (opts: Partial<RenderReferenceImageOptions>): Uint8Array =>
  readPng(renderReferenceImage({ ...base, ...opts })).pixels;

/** Mean absolute difference between horizontal neighbours: residual noise shows up here. */
function grain(pixels: Uint8Array, width: number): number {
  let sum = 0;
  let count = 0;
  for (let i = 3; i < pixels.length; i++) {
    if (i % (width * 3) < 3) continue;
    sum += Math.abs((pixels[i] ?? 0) - (pixels[i - 3] ?? 0));
    count++;
  }
  return sum / count;
}

describe('renderReferenceImage', () => {
  it('returns a valid PNG of the requested size', () => {
    const png = renderReferenceImage(base);
    const { chunks, raw, width, height } = readPng(png); // signature and every CRC checked
    expect([width, height]).toEqual([64, 48]);
    expect(decodePngSize(png)).toEqual({ width: 64, height: 48 });
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect(raw.length).toBe(48 * (1 + 3 * 64));
  });

  it('renders non-square and tiny sizes', () => {
    expect(decodePngSize(renderReferenceImage({ ...base, width: 512, height: 512 }))).toEqual({
      width: 512,
      height: 512,
    });
    expect(decodePngSize(renderReferenceImage({ ...base, width: 1, height: 3, steps: 1 }))).toEqual({
      width: 1,
      height: 3,
    });
  });

  it('is deterministic: same inputs give byte-identical PNGs', () => {
    expect(renderReferenceImage(base).equals(renderReferenceImage({ ...base }))).toBe(true);
    const tensor = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const a = renderReferenceImage({ ...base, conditioning: tensor, guidance: 5, negativePrompt: 'blurry' });
    const b = renderReferenceImage({
      ...base,
      conditioning: Float32Array.from(tensor),
      guidance: 5,
      negativePrompt: 'blurry',
    });
    expect(a.equals(b)).toBe(true);
  });

  it('gives visibly different images for different prompts', () => {
    const prompts = ['a red fox in the snow', 'a blue whale at sunset', 'a castle', 'a castle.'];
    const images = prompts.map((conditioning) => pixelsOf({ conditioning }));
    for (let i = 0; i < images.length; i++) {
      for (let j = i + 1; j < images.length; j++) {
        const mad = meanAbsDiff(images[i] as Uint8Array, images[j] as Uint8Array);
        expect(mad, `${prompts[i]} vs ${prompts[j]}`).toBeGreaterThan(15);
      }
    }
    expect(
      renderReferenceImage(base).equals(renderReferenceImage({ ...base, conditioning: 'a red fox in the snow!' })),
    ).toBe(false);
  });

  it('gives different images for different conditioning tensors', () => {
    const t1 = Float32Array.from({ length: 32 }, (_, i) => i / 32);
    const t2 = Float32Array.from(t1, (v, i) => (i === 5 ? v + 1e-3 : v));
    expect(meanAbsDiff(pixelsOf({ conditioning: t1 }), pixelsOf({ conditioning: t2 }))).toBeGreaterThan(15);
  });

  it('gives different images for different seeds', () => {
    const a = renderReferenceImage(base);
    const b = renderReferenceImage({ ...base, seed: 8 });
    expect(a.equals(b)).toBe(false);
    expect(meanAbsDiff(readPng(a).pixels, readPng(b).pixels)).toBeGreaterThan(3);
    // Large and negative seeds are distinct too.
    expect(renderReferenceImage({ ...base, seed: -7 }).equals(a)).toBe(false);
    expect(renderReferenceImage({ ...base, seed: 2 ** 40 + 7 }).equals(a)).toBe(false);
  });

  it('refines with more steps: less residual noise', () => {
    const g2 = grain(pixelsOf({ steps: 2 }), 64);
    const g20 = grain(pixelsOf({ steps: 20 }), 64);
    const g50 = grain(pixelsOf({ steps: 50 }), 64);
    expect(g2).toBeGreaterThan(g20 * 2);
    expect(g20).toBeGreaterThan(g50);
  });

  it('applies guidance, and a negative prompt only under guidance', () => {
    const plain = pixelsOf({});
    const guided = pixelsOf({ guidance: 7.5 });
    expect(meanAbsDiff(plain, guided)).toBeGreaterThan(3);
    expect(meanAbsDiff(guided, pixelsOf({ guidance: 7.5, negativePrompt: 'blurry' }))).toBeGreaterThan(3);
    expect(pixelsOf({ negativePrompt: 'blurry' })).toEqual(plain); // guidance 1: no CFG, as in diffusers
  });

  it('rejects invalid options with a request error and a hint', () => {
    const bad: Partial<RenderReferenceImageOptions>[] = [
      { steps: 0 },
      { steps: 1.5 },
      { width: 0 },
      { height: 20000 },
      { seed: 0.5 },
      { guidance: Number.NaN },
      { conditioning: 42 as unknown as string },
    ];
    for (const opts of bad) {
      let caught: unknown;
      try {
        renderReferenceImage({ ...base, ...opts });
      } catch (err) {
        caught = err;
      }
      expect(isOmniError(caught), JSON.stringify(opts)).toBe(true);
      if (isOmniError(caught)) {
        expect(caught.code).toBe('OMNI_REQUEST_FAILED');
        expect(caught.hint).toBeTruthy();
      }
    }
  });
});
