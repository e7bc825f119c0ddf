import { describe, expect, it } from 'vitest';
import { didYouMean, editDistance, suggestions } from '../../src/config/did-you-mean.js';

describe('did-you-mean', () => {
  it('computes edit distance with transpositions', () => {
    expect(editDistance('num_replica', 'num_replicas')).toBe(1);
    expect(editDistance('devcies', 'devices')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests close keys only, best first', () => {
    const keys = ['process', 'devices', 'num_replicas', 'env', 'requires_multimodal_data', 'restart'];
    expect(didYouMean('num_replica', keys)).toBe('did you mean `num_replicas`?');
    expect(didYouMean('Num-Replicas', keys)).toBe('did you mean `num_replicas`?');
    expect(didYouMean('replicas', keys)).toBe('did you mean `num_replicas`?');
    expect(didYouMean('gpu_memory', keys)).toBeUndefined();
    expect(suggestions('ev', keys)).toEqual(['env']);
    expect(suggestions('xyz', keys)).toEqual([]);
  });
});
