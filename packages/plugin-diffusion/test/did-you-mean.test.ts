import { describe, expect, it } from 'vitest';
import { didYouMean, editDistance, unknownKeyHint } from '../src/did-you-mean.js';

describe('didYouMean', () => {
  it('measures edit distance', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
  });

  it('suggests close keys only', () => {
    const keys = ['num_inference_steps', 'guidance_scale', 'seed'];
    expect(didYouMean('num_inference_step', keys)).toBe('num_inference_steps');
    expect(didYouMean('Guidance_Scale', keys)).toBe('guidance_scale');
    expect(didYouMean('sed', keys)).toBe('seed');
    expect(didYouMean('temperature', keys)).toBeUndefined();
    expect(didYouMean('x', [])).toBeUndefined();
  });

  it('falls back to listing the known keys', () => {
    expect(unknownKeyHint('zzz', ['a', 'b'], 'thing')).toBe('remove it, or use one of the known keys of thing: a, b');
  });
});
