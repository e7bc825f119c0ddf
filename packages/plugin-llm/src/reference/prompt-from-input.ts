import { isPayloadRef, type PayloadRef } from '@omnistage/core/worker';

/** The bytes of a payload reference the worker already read (`conn.getPayload`), if it did. */
export type PayloadReader = (ref: PayloadRef) => Uint8Array | undefined;

/**
 * The text a reference engine conditions on: a prompt string, or the text of an upstream stage's
 * output (`{text}`), or a stable rendering of anything else (token ids, tensors), so a downstream
 * stage's output depends on what it received. A payload reference (an upstream tensor) renders as
 * its description and a digest of its bytes, the same whether it came inline or through shared
 * memory (its shm key, which differs per run, is left out); without its bytes, as its description only.
 */
export function promptFromInput(input: unknown, read?: PayloadReader): string {
  if (typeof input === 'string') return input;
  if (Array.isArray(input)) return input.map((i) => promptFromInput(i, read)).join('\n');
  if (typeof input === 'object' && input !== null) {
    const o = input as Record<string, unknown>;
    if (typeof o['text'] === 'string') return o['text'];
    if (typeof o['prompt'] === 'string') return o['prompt'];
    return JSON.stringify(o, (_key, value: unknown) => (isPayloadRef(value) ? describePayload(value, read) : value));
  }
  return String(input);
}

function describePayload(ref: PayloadRef, read?: PayloadReader): Record<string, unknown> {
  const d: Record<string, unknown> = { size: ref.size };
  if (ref.dtype !== undefined) d['dtype'] = ref.dtype;
  if (ref.shape !== undefined) d['shape'] = ref.shape;
  if (ref.mime !== undefined) d['mime'] = ref.mime;
  const bytes = read?.(ref);
  if (bytes) d['fnv1a'] = fnv1a(bytes);
  return { payload: d };
}

function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
