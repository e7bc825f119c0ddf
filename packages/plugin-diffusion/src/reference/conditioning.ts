import { isPayloadRef, type PayloadRef } from '@omnistage/core/worker';

/** The bytes of a payload reference the worker already read (`conn.getPayload`), if it did. */
export type PayloadReader = (ref: PayloadRef) => Uint8Array | undefined;

/**
 * What the reference diffusion engine conditions on: prompt text, an upstream stage's text, or an
 * upstream tensor — so the image depends on what the previous stage produced. The tensor is a
 * payload reference (`{$payload: 1, via, key, ...}`: inline, or read by key from shared memory
 * through `read`) or the older inline shape `{dtype: 'float32', shape, data_base64}`.
 */
export function conditioningFromInput(input: unknown, read?: PayloadReader): string | Float32Array {
  if (typeof input === 'string') return input;
  if (Array.isArray(input)) {
    const parts = input.map((i) => conditioningFromInput(i, read));
    return parts.every((p) => typeof p === 'string') ? parts.join('\n') : JSON.stringify(input);
  }
  if (typeof input === 'object' && input !== null) {
    const o = input as Record<string, unknown>;
    const tensor = o['tensor'];
    const bytes = tensorBytes(tensor, read);
    if (bytes)
      return new Float32Array(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength - (bytes.byteLength % 4)),
      );
    if (typeof o['text'] === 'string') return o['text'];
    if (typeof o['prompt'] === 'string') return o['prompt'];
    return JSON.stringify(o);
  }
  return String(input);
}

function tensorBytes(tensor: unknown, read?: PayloadReader): Uint8Array | null {
  if (typeof tensor !== 'object' || tensor === null) return null;
  if (isPayloadRef(tensor)) {
    const bytes = read?.(tensor);
    if (bytes) return bytes;
    return tensor.via === 'inline' ? Buffer.from(tensor.data_base64 ?? '', 'base64') : null;
  }
  const t = tensor as Record<string, unknown>;
  return typeof t['data_base64'] === 'string' ? Buffer.from(t['data_base64'], 'base64') : null;
}
