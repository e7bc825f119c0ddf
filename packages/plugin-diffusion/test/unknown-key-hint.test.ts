import { describe, expect, it } from 'vitest';
import { unknownKeyHint } from '../src/unknown-key-hint.js';

describe('unknownKeyHint', () => {
  const keys = ['num_inference_steps', 'guidance_scale', 'seed'];

  it('suggests a close key', () => {
    expect(unknownKeyHint('num_inference_step', keys, 'default_sampling_params')).toBe(
      'did you mean "num_inference_steps"?',
    );
    expect(unknownKeyHint('sed', keys, 'default_sampling_params')).toBe('did you mean "seed"?');
  });

  it('falls back to listing the known keys', () => {
    expect(unknownKeyHint('zzz', ['a', 'b'], 'thing')).toBe('remove it, or use one of the known keys of thing: a, b');
  });
});
