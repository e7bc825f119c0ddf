/**
 * What the reference diffusion engine conditions on: prompt text, an upstream stage's text, or an
 * upstream tensor (float32, base64) — so the image depends on what the previous stage produced.
 */
export function conditioningFromInput(input: unknown): string | Float32Array {
  if (typeof input === 'string') return input;
  if (Array.isArray(input)) {
    const parts = input.map(conditioningFromInput);
    return parts.every((p) => typeof p === 'string') ? parts.join('\n') : JSON.stringify(input);
  }
  if (typeof input === 'object' && input !== null) {
    const o = input as Record<string, unknown>;
    const tensor = o['tensor'] as Record<string, unknown> | undefined;
    if (tensor && typeof tensor['data_base64'] === 'string') {
      const bytes = Buffer.from(tensor['data_base64'], 'base64');
      return new Float32Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 4));
    }
    if (typeof o['text'] === 'string') return o['text'];
    if (typeof o['prompt'] === 'string') return o['prompt'];
    return JSON.stringify(o);
  }
  return String(input);
}
