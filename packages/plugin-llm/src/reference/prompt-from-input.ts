/**
 * The text a reference engine conditions on: a prompt string, or the text of an upstream stage's
 * output (`{text}`), or a stable rendering of anything else (token ids, tensors), so a downstream
 * stage's output depends on what it received.
 */
export function promptFromInput(input: unknown): string {
  if (typeof input === 'string') return input;
  if (Array.isArray(input)) return input.map(promptFromInput).join('\n');
  if (typeof input === 'object' && input !== null) {
    const o = input as Record<string, unknown>;
    if (typeof o['text'] === 'string') return o['text'];
    if (typeof o['prompt'] === 'string') return o['prompt'];
    return JSON.stringify(o);
  }
  return String(input);
}
