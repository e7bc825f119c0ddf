import { describe, expect, it } from 'vitest';
import { promptFromInput } from '../src/reference/prompt-from-input.js';

describe('reference LLM prompt from an upstream output', () => {
  it('uses the text when there is one', () => {
    expect(promptFromInput({ text: 'hello', tensor: { $payload: 1, key: 's0r0_a_0', size: 4, via: 'shm' } })).toBe(
      'hello',
    );
  });

  it('renders a payload reference by its description and bytes, the same inline or through shared memory', () => {
    const bytes = Buffer.from([1, 2, 3, 4]);
    const inline = {
      $payload: 1,
      key: 'i_x',
      size: 4,
      via: 'inline',
      dtype: 'float32',
      shape: [1],
      data_base64: bytes.toString('base64'),
    };
    const shm = { $payload: 1, key: 's0r0_abc_7', size: 4, via: 'shm', dtype: 'float32', shape: [1] };
    const read = (r: { via: string; data_base64?: string }) =>
      r.via === 'inline' ? Buffer.from(r.data_base64!, 'base64') : bytes;
    const a = promptFromInput({ tensor: inline }, read);
    expect(a).toBe(promptFromInput({ tensor: shm }, read));
    expect(a).not.toContain('s0r0_abc_7');
    expect(a).not.toBe(promptFromInput({ tensor: shm }, () => Buffer.from([9, 9, 9, 9])));
  });
});
