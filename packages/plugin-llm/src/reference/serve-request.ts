import {
  findPayloadRefs,
  type JsonObject,
  type PayloadRef,
  type RequestStream,
  type WorkerConnection,
  type WorkerRequest,
} from '@omnistage/core/worker';
import { CausalInput, tokenUnitsOf } from './causal-input.js';
import { generateTokens, type GenerationContext } from './generate.js';
import type { ReferenceKnobs } from './knobs.js';
import { promptFromInput } from './prompt-from-input.js';
import { REFERENCE_SAMPLE_RATE, tokensToPcm, tokensToWav } from './wav.js';

/** What the reference engine knows while serving: its connection, knobs and stage. */
export interface ReferenceStage {
  conn: WorkerConnection;
  knobs: ReferenceKnobs;
  modelStage: string | null;
  /** `engine_output_type`: latent stages send hidden states, audio stages audio. */
  latent: boolean;
  audio: boolean;
  hiddenSize: number;
  defaults: Record<string, unknown>;
  /** Reads an upstream payload (checked against its shape). */
  readTensor(ref: PayloadRef): Promise<Buffer>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The input as the engine conditions on it. An upstream stage's output (token ids) or a streamed
 * input is read causally: step k waits for input unit k and depends on nothing later, so streamed
 * and whole inputs give the same output. A prompt is read whole. Payloads the input carries are read
 * as they come and acknowledged when the request ends.
 */
async function contextOf(
  stage: ReferenceStage,
  req: WorkerRequest,
  received: Map<PayloadRef, Buffer>,
): Promise<{ context: GenerationContext; input: CausalInput | null }> {
  const readAll = async (data: unknown): Promise<void> => {
    for (const ref of findPayloadRefs(data)) received.set(ref, await stage.readTensor(ref));
  };
  const read = (ref: PayloadRef): Buffer | undefined => received.get(ref);
  if (!req.streamed && tokenUnitsOf(req.input) === null) {
    await readAll(req.input);
    return { context: promptFromInput(req.input, read), input: null };
  }
  const input = new CausalInput(req.inputs, read, readAll);
  return { context: { causal: (step) => input.hashAt(step) }, input };
}

/** Serves one request: tokens as they are generated (at the pace the orchestrator takes them), then the final output. */
export async function serveRequest(stage: ReferenceStage, req: WorkerRequest, stream: RequestStream): Promise<void> {
  const { conn, knobs } = stage;
  const received = new Map<PayloadRef, Buffer>();
  try {
    const params = { ...stage.defaults, ...(req.params as Record<string, unknown>) };
    const { context, input } = await contextOf(stage, req, received);
    const tokens: number[] = [];
    // One hidden state per token, joined at the end: spreading a large one into push() passes each
    // value as an argument and overflows the stack (hidden_size >= 131072).
    const hidden: Float32Array[] = [];
    let text = '';
    let finish: string | null = null;
    let spoken = 0;
    let windows = 0;
    // An audio stage decodes window by window: what the input so far allowed becomes one audio chunk.
    const speak = async (): Promise<void> => {
      if (!stage.audio || spoken === tokens.length) return;
      const pcm = tokensToPcm(tokens.slice(spoken));
      spoken = tokens.length;
      const ref = await conn.putPayload(pcm, { mime: 'audio/pcm' });
      stream.write({ kind: 'audio_chunk', index: windows++, sample_rate: REFERENCE_SAMPLE_RATE, ...ref } as JsonObject);
      await stream.drained();
    };
    const steps = generateTokens(context, params, {
      modelStage: stage.modelStage,
      ...(stage.latent ? { hiddenSize: stage.hiddenSize } : {}),
    });
    for (let step = 0; ; step++) {
      while (input !== null && !input.has(step)) {
        await speak();
        if (!(await input.more())) break;
      }
      const next = steps.next();
      if (next.done === true) break;
      const t = next.value;
      if (stream.signal.aborted) return;
      if (knobs.token_delay_ms > 0) await sleep(knobs.token_delay_ms);
      if (t.finish_reason !== 'eos') {
        tokens.push(t.token_id);
        text += t.text;
        stream.write({ kind: 'token', index: t.index, token_id: t.token_id, text: t.text });
        await stream.drained();
      }
      if (t.hidden) hidden.push(t.hidden);
      finish = t.finish_reason;
    }
    await speak();
    const promptTokens =
      typeof context === 'string' ? (context.match(/\w+|[^\w\s]/g)?.length ?? 0) : (input?.units ?? 0);
    stream.end(await finalOutput(stage, { promptTokens, tokens, hidden, text, finish }));
  } finally {
    for (const ref of received.keys()) conn.ackPayload(ref);
  }
}

/**
 * The last output. Media and tensors go through the stage's connector: inline when small, shared
 * memory above the threshold (an inline reference still carries `data_base64`, like the older shapes).
 */
async function finalOutput(
  stage: ReferenceStage,
  r: { promptTokens: number; tokens: number[]; hidden: Float32Array[]; text: string; finish: string | null },
): Promise<JsonObject> {
  const { conn } = stage;
  const out: Record<string, unknown> = stage.audio
    ? {
        kind: 'audio',
        mime: 'audio/wav',
        text: r.text,
        token_ids: r.tokens,
        ...(await conn.putPayload(tokensToWav(r.tokens), { mime: 'audio/wav' })),
      }
    : { kind: 'final', text: r.text, token_ids: r.tokens, finish_reason: r.finish ?? 'length' };
  // What an engine reports for OpenAI's `usage`.
  out['usage'] = { prompt_tokens: r.promptTokens, completion_tokens: r.tokens.length };
  // Says so in every output: text from a stand-in must not be mistaken for a model's answer.
  out['reference_engine'] = true;
  if (stage.latent) {
    const f32 = new Float32Array(r.hidden.length * stage.hiddenSize);
    r.hidden.forEach((h, i) => f32.set(h, i * stage.hiddenSize));
    out['tensor'] = await conn.putPayload(new Uint8Array(f32.buffer), {
      dtype: 'float32',
      shape: [r.hidden.length, stage.hiddenSize],
    });
  }
  return out as JsonObject;
}
