import type { JsonValue } from '@omnistage/core/worker';
import { hashString, mix } from './prng.js';
import { promptFromInput, type PayloadReader } from './prompt-from-input.js';

/**
 * The units a reference engine reads of an upstream output: its token ids (`token_id` of a step,
 * `token_ids` of a window or a final output), or null for anything else (a prompt, an image).
 */
export function tokenUnitsOf(input: unknown): number[] | null {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return null;
  const o = input as Record<string, unknown>;
  if (typeof o['token_id'] === 'number') return [o['token_id']];
  const ids = o['token_ids'];
  if (Array.isArray(ids) && ids.every((i) => typeof i === 'number')) return ids as number[];
  return null;
}

/**
 * The input of a causal reference engine, read as it arrives: a sequence of units (token ids, or one
 * digest per chunk of anything else), so that its step k depends only on units 0..k. With the whole
 * input at once (an ordinary request) the units, and so the output, are the same as streamed.
 */
export class CausalInput {
  readonly #iterator: AsyncIterator<JsonValue>;
  readonly #read: PayloadReader;
  readonly #onChunk: (chunk: JsonValue) => Promise<void>;
  /** prefix[k]: hash of units 0..k. */
  readonly #prefix: number[] = [];
  #ended = false;
  /** Input chunks taken so far. */
  chunks = 0;

  constructor(inputs: AsyncIterable<JsonValue>, read: PayloadReader, onChunk: (chunk: JsonValue) => Promise<void>) {
    this.#iterator = inputs[Symbol.asyncIterator]();
    this.#read = read;
    this.#onChunk = onChunk;
  }

  /** Input units read so far (what the engine reports as its prompt tokens). */
  get units(): number {
    return this.#prefix.length;
  }

  /** True when step `step` can be generated without reading more input. */
  has(step: number): boolean {
    return this.#prefix.length > step || this.#ended;
  }

  /** Reads one more chunk; false at the end of the input. */
  async more(): Promise<boolean> {
    if (this.#ended) return false;
    const next = await this.#iterator.next();
    if (next.done === true) {
      this.#ended = true;
      return false;
    }
    this.chunks++;
    await this.#onChunk(next.value);
    const units = tokenUnitsOf(next.value) ?? [hashString(promptFromInput(next.value, this.#read))];
    for (const u of units) this.#prefix.push(mix(this.#prefix.at(-1) ?? 0x1234567, u >>> 0));
    return true;
  }

  /** The hash step `step` conditions on: units 0..step (all of them past the end). Call after {@link has}. */
  hashAt(step: number): number {
    return this.#prefix[Math.min(step, this.#prefix.length - 1)] ?? 0x1234567;
  }
}
