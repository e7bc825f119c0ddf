import { describe, expect, it } from 'vitest';
import { describeValue, invalidValue, unknownKey } from '../src/error-messages.js';

const at = { file: '/cfg/p.yaml', line: 3, col: 5 };

describe('message factories', () => {
  it('describe values as the user wrote them: NaN and Infinity are not "null", long strings are cut', () => {
    expect([NaN, Infinity, -Infinity, 1.5, null, undefined, [1], { a: 1 }, true].map(describeValue)).toEqual([
      'NaN',
      'Infinity',
      '-Infinity',
      '1.5',
      'null',
      'nothing',
      'a list',
      'a mapping',
      'true',
    ]);
    expect(describeValue('two')).toBe('"two" (a string)');
    expect(describeValue('x'.repeat(1_000_000))).toBe(`"${'x'.repeat(60)}"… (a string of 1000000 characters)`);
  });

  it('invalidValue: "<what> must be <expected>, got <value>." at the location, exit code 2', () => {
    const err = invalidValue({
      what: 'tensor_parallel_size',
      expected: 'an integer from 1 to 65536',
      got: NaN,
      location: at,
      hint: 'Set it to 2.',
      context: { stage_id: 1 },
    });
    expect([err.code, err.exitCode, err.message, err.location, err.hint, err.context]).toEqual([
      'OMNI_CONFIG_INVALID',
      2,
      'tensor_parallel_size must be an integer from 1 to 65536, got NaN.',
      at,
      'Set it to 2.',
      { stage_id: 1 },
    ]);
  });

  it('unknownKey: suggests the closest key, lists a dozen otherwise, and stays cheap for a huge key', () => {
    const known = Array.from({ length: 20 }, (_, i) => `key_${i}_name`).concat(['num_replicas']);
    const near = unknownKey({ what: 'runtime', key: 'num_replica', known, location: at });
    expect([near.code, near.message, near.hint]).toEqual([
      'OMNI_CONFIG_UNKNOWN_KEY',
      'runtime has an unknown key `num_replica`.',
      'Did you mean `num_replicas`?',
    ]);
    const far = unknownKey({ what: 'runtime', key: 'q'.repeat(1_000_000), known, location: at });
    expect(far.message).toBe(`runtime has an unknown key \`${'q'.repeat(60)}…\`.`);
    expect(far.hint).toBe(`Known keys: ${known.slice(0, 12).join(', ')} and 9 more.`);
  });
});
