import { describe, expect, it } from 'vitest';
import { conditioningFromInput } from '../src/reference/conditioning.js';

const f32 = Float32Array.from([0.5, -1, 2]);
const bytes = Buffer.from(f32.buffer);

describe('reference diffusion conditioning', () => {
  it('reads an upstream tensor given as an inline payload reference or in the older inline shape', () => {
    const ref = {
      $payload: 1,
      key: 'i_1',
      size: bytes.length,
      via: 'inline',
      dtype: 'float32',
      shape: [3],
      data_base64: bytes.toString('base64'),
    };
    expect(Array.from(conditioningFromInput({ text: 't', tensor: ref }) as Float32Array)).toEqual([0.5, -1, 2]);
    expect(
      Array.from(
        conditioningFromInput({
          tensor: { dtype: 'float32', shape: [3], data_base64: bytes.toString('base64') },
        }) as Float32Array,
      ),
    ).toEqual([0.5, -1, 2]);
  });

  it('reads a shared-memory tensor through the reader it is given (the worker passes conn.getPayload)', () => {
    const ref = { $payload: 1, key: 's0r0_ab_0', size: bytes.length, via: 'shm', dtype: 'float32', shape: [3] };
    const read: string[] = [];
    const out = conditioningFromInput({ text: 't', tensor: ref }, (r) => {
      read.push(r.key);
      return bytes;
    });
    expect(Array.from(out as Float32Array)).toEqual([0.5, -1, 2]);
    expect(read).toEqual(['s0r0_ab_0']);
    // Without a reader, an shm tensor cannot be read: the text is used.
    expect(conditioningFromInput({ text: 't', tensor: ref })).toBe('t');
  });
});
