import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deepCopy } from '../src/deep-copy.js';
import { didYouMean, editDistance } from '../src/did-you-mean.js';
import { isPyTruthy, pyPathJoin } from '../src/python-compat.js';

describe('didYouMean', () => {
  it('computes edit distances', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
  });

  it('suggests close candidates only', () => {
    expect(didYouMean('temprature', ['top_p', 'temperature'])).toBe('temperature');
    expect(didYouMean('Top-P', ['top_p', 'top_k'])).toBe('top_p');
    expect(didYouMean('zzz', ['temperature'])).toBeUndefined();
    expect(didYouMean('x', [])).toBeUndefined();
  });
});

describe('python compat', () => {
  it.each([
    [null, false], [undefined, false], [false, false], [0, false], ['', false], [[], false], [{}, false],
    [true, true], [1, true], ['a', true], [[0], true], [{ a: 0 }, true],
  ])('bool(%j) is %s', (v, expected) => {
    expect(isPyTruthy(v)).toBe(expected);
  });

  it('joins like os.path.join', () => {
    expect(pyPathJoin('/m', 'a')).toBe(`/m${path.sep}a`);
    expect(pyPathJoin('/m/', 'a')).toBe('/m/a');
    expect(pyPathJoin('/m', '/abs')).toBe('/abs');
    expect(pyPathJoin('/m', './a')).toBe(`/m${path.sep}./a`);
  });
});

describe('deepCopy', () => {
  it('copies plain data and keeps other objects by reference', () => {
    const fn = (): void => undefined;
    const date = new Date(0);
    const src = { a: [1, { b: 2 }], fn, date };
    const out = deepCopy(src);
    expect(out).toEqual(src);
    expect(out.a).not.toBe(src.a);
    expect(out.a[1]).not.toBe(src.a[1]);
    expect(out.fn).toBe(fn);
    expect(out.date).toBe(date);
  });
});
