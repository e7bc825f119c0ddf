import { describe, expect, it } from 'vitest';
import { parseSourced } from '../../src/config/load.js';
import { locate, toJS } from '../../src/config/sourced.js';
import { rejection } from './helpers.js';

describe('parseSourced (YAML → sourced tree)', () => {
  it('resolves merge keys and aliases like YAML 1.1 merge, with locations', () => {
    const doc = parseSourced('base: &b\n  x: 1\n  y: 2\nm:\n  <<: *b\n  y: 3\n  z:\nl: [1, *b]\n', '/f.yaml');
    expect(toJS(doc.root)).toEqual({ base: { x: 1, y: 2 }, m: { y: 3, z: null, x: 1 }, l: [1, { x: 1, y: 2 }] });
    expect(locate(doc.root, ['m', 'y'])).toEqual({ file: '/f.yaml', line: 6, col: 6 });
    // merged keys point at their definition
    expect(locate(doc.root, ['m', 'x'])).toEqual({ file: '/f.yaml', line: 2, col: 6 });
    // an empty value points at its key
    expect(locate(doc.root, ['m', 'z'])).toEqual({ file: '/f.yaml', line: 7, col: 3 });
    expect(locate(doc.root, ['m', 'z'], 'key')).toEqual({ file: '/f.yaml', line: 7, col: 3 });
    // a missing key walks up to its map
    expect(locate(doc.root, ['m', 'nope', 'deeper'])).toEqual({ file: '/f.yaml', line: 4, col: 1 });
    expect(locate(doc.root, ['l', 1])).toEqual({ file: '/f.yaml', line: 8, col: 8 });
  });

  it('keeps YAML 1.2 core scalars (yes stays a string)', () => {
    expect(toJS(parseSourced('a: yes\nb: 0x10\nc: ~\nd: "1"\n', 'f').root)).toEqual({
      a: 'yes',
      b: 16,
      c: null,
      d: '1',
    });
  });

  it('refuses alias bombs', async () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++)
      bomb.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(', ')}]`,
      );
    const err = await rejection(Promise.resolve().then(() => parseSourced(bomb.join('\n'), 'bomb.yaml')));
    expect(err.code).toBe('OMNI_CONFIG_PARSE');
  });

  it('reports unresolved tags as warnings with a location', () => {
    const doc = parseSourced('a: 1\nb: !custom x\n', 'f.yaml');
    expect(doc.warnings.map((w) => [w.code, w.line, w.col])).toEqual([['OMNI_WARN_YAML', 2, 4]]);
  });
});
