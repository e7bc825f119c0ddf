import { EOS_TOKEN, VOCABULARY } from './vocabulary.js';
import { hashString, mix, mulberry32 } from './prng.js';

/** Sampling parameters the reference LLM honours (a subset of vLLM's SamplingParams). */
export interface ReferenceSamplingParams {
  temperature: number;
  top_k: number;
  top_p: number;
  seed: number;
  max_tokens: number;
  stop: string[];
}

export const DEFAULT_REFERENCE_SAMPLING: ReferenceSamplingParams = {
  temperature: 1,
  top_k: -1,
  top_p: 1,
  seed: 0,
  max_tokens: 16,
  stop: [],
};

/** One generated token, with its hidden state when the stage emits latents. */
export interface GeneratedToken {
  index: number;
  token_id: number;
  text: string;
  /** Float32 hidden state of `hiddenSize` values (only when requested). */
  hidden?: Float32Array;
  finish_reason: 'length' | 'stop' | 'eos' | null;
}

function coerce(params: Record<string, unknown>): ReferenceSamplingParams {
  const num = (k: keyof ReferenceSamplingParams, d: number): number => {
    const v = params[k];
    return typeof v === 'number' && Number.isFinite(v) ? v : d;
  };
  const stopRaw = params['stop'];
  const stop =
    typeof stopRaw === 'string'
      ? [stopRaw]
      : Array.isArray(stopRaw)
        ? stopRaw.filter((s): s is string => typeof s === 'string')
        : [];
  return {
    temperature: Math.max(0, num('temperature', DEFAULT_REFERENCE_SAMPLING.temperature)),
    top_k: Math.trunc(num('top_k', DEFAULT_REFERENCE_SAMPLING.top_k)),
    top_p: Math.min(1, Math.max(0, num('top_p', DEFAULT_REFERENCE_SAMPLING.top_p))),
    seed: Math.trunc(num('seed', DEFAULT_REFERENCE_SAMPLING.seed)),
    max_tokens: Math.max(0, Math.trunc(num('max_tokens', DEFAULT_REFERENCE_SAMPLING.max_tokens))),
    stop,
  };
}

/**
 * Deterministic logits for the next token: a function of the prompt, the model stage and the
 * tokens so far — so the same request always yields the same text, and different prompts differ.
 */
function logitsFor(contextHash: number, step: number, previous: number): Float64Array {
  const rand = mulberry32(mix(contextHash, step, previous));
  const logits = new Float64Array(VOCABULARY.length);
  for (let i = 0; i < logits.length; i++) logits[i] = rand() * 6;
  // EOS becomes likelier as the text grows, like a real model's end-of-sentence pressure.
  logits[EOS_TOKEN] = -4 + step * 0.08;
  return logits;
}

function pick(logits: Float64Array, p: ReferenceSamplingParams, rand: () => number): number {
  if (p.temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const k = p.top_k > 0 ? Math.min(p.top_k, order.length) : order.length;
  const kept = order.slice(0, k);
  const max = logits[kept[0]!]!;
  const weights = kept.map((i) => Math.exp((logits[i]! - max) / p.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  // top_p: smallest prefix whose probability mass reaches p (at least one token).
  let mass = 0;
  let cut = kept.length;
  for (let j = 0; j < kept.length; j++) {
    mass += weights[j]! / total;
    if (mass >= p.top_p) {
      cut = j + 1;
      break;
    }
  }
  const w = weights.slice(0, cut);
  const sum = w.reduce((a, b) => a + b, 0);
  let r = rand() * sum;
  for (let j = 0; j < cut; j++) {
    r -= w[j]!;
    if (r <= 0) return kept[j]!;
  }
  return kept[cut - 1]!;
}

function hiddenState(contextHash: number, step: number, token: number, size: number): Float32Array {
  const rand = mulberry32(mix(contextHash, step, token, 0x5eed));
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rand() * 2 - 1;
  return out;
}

/**
 * What a step conditions on: the whole prompt, or (causal) a hash of the input received before the
 * step, called when the step is generated (a lazy generator: the caller may wait for input between
 * steps).
 */
export type GenerationContext = string | { causal: (step: number) => number };

/**
 * Generates tokens one by one from `context`. Deterministic for the same prompt (or input prefix per
 * step), model stage and sampling parameters (including `seed`); honours temperature, top_k, top_p,
 * max_tokens and stop strings (the stop string is not included in the output, as vLLM's default).
 */
export function* generateTokens(
  context: GenerationContext,
  rawParams: Record<string, unknown>,
  options: { modelStage?: string | null; hiddenSize?: number } = {},
): Generator<GeneratedToken> {
  const p = coerce(rawParams);
  const stageHash = hashString(options.modelStage ?? '');
  const whole = typeof context === 'string' ? mix(hashString(context), stageHash) : null;
  const contextAt = (step: number): number =>
    whole ?? mix((context as { causal: (step: number) => number }).causal(step), stageHash);
  // Causal: the sampler's seed must not depend on input that has not arrived yet.
  const rand = mulberry32(mix(whole ?? stageHash, p.seed >>> 0, 0xabc));
  let previous = -1;
  let text = '';
  for (let step = 0; step < p.max_tokens; step++) {
    const contextHash = contextAt(step);
    const token = pick(logitsFor(contextHash, step, previous), p, rand);
    const hidden = options.hiddenSize ? hiddenState(contextHash, step, token, options.hiddenSize) : undefined;
    if (token === EOS_TOKEN) {
      yield { index: step, token_id: token, text: '', ...(hidden ? { hidden } : {}), finish_reason: 'eos' };
      return;
    }
    const piece = (step === 0 ? '' : ' ') + VOCABULARY[token]!;
    const next = text + piece;
    const stopAt = p.stop.map((s) => (s === '' ? -1 : next.indexOf(s))).filter((i) => i >= 0);
    if (stopAt.length > 0) {
      const cutAt = Math.min(...stopAt);
      const kept = next.slice(text.length, Math.max(text.length, cutAt));
      yield { index: step, token_id: token, text: kept, ...(hidden ? { hidden } : {}), finish_reason: 'stop' };
      return;
    }
    text = next;
    previous = token;
    const last = step === p.max_tokens - 1;
    yield {
      index: step,
      token_id: token,
      text: piece,
      ...(hidden ? { hidden } : {}),
      finish_reason: last ? 'length' : null,
    };
  }
}
