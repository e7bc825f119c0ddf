/**
 * The reference LLM engine: a real worker process that speaks omnistage's control protocol and
 * generates text token by token, deterministically (see generate.ts). Started by the `reference`
 * engine of stage type `llm`; its test knobs (knobs.ts) reproduce slow, failing and hanging engines.
 */
import {
  connectToOrchestrator,
  findPayloadRefs,
  type JsonObject,
  type PayloadRef,
  type RequestStream,
  type WorkerConnection,
  type WorkerRequest,
} from '@omnistage/core/worker';
import { generateTokens } from './generate.js';
import { engineArgsFromEnv, readKnobs, type ReferenceKnobs } from './knobs.js';
import { promptFromInput } from './prompt-from-input.js';
import { tokensToWav } from './wav.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Hangs "forever" but still dies with the orchestrator (stdin EOF), like a stuck engine would not. */
function hang(): void {
  setInterval(() => undefined, 1 << 30);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

/** Acts out `fail_phase`/`hang_phase: hello` before any message is exchanged; true when it hangs. */
function faultBeforeHello(knobs: ReferenceKnobs): boolean {
  if (knobs.fail_phase === 'hello') {
    process.stderr.write(`reference engine: failing before hello (fail_phase=hello, exit ${knobs.fail_exit_code})\n`);
    process.exit(knobs.fail_exit_code);
  }
  if (knobs.hang_phase === 'hello') {
    process.stderr.write('reference engine: hanging before hello (hang_phase=hello)\n');
    hang();
    return true;
  }
  return false;
}

/** "Loads" with the devices shared, then "profiles" alone (a plain sleep when phases are off or not granted). */
async function initialize(conn: WorkerConnection, knobs: ReferenceKnobs): Promise<void> {
  if (knobs.init_delay_ms > 0) await sleep(knobs.init_delay_ms);
  if (knobs.load_ms > 0) await sleep(knobs.load_ms);
  await conn.exclusive(async () => {
    if (knobs.window_fault === 'exit') {
      process.stderr.write(
        `reference engine: exiting inside its init window (window_fault=exit, exit ${knobs.fail_exit_code})\n`,
      );
      process.exit(knobs.fail_exit_code);
    }
    if (knobs.window_fault === 'hang') {
      process.stderr.write('reference engine: hanging inside its init window (window_fault=hang)\n');
      await new Promise(() => hang());
    }
    if (knobs.profile_ms > 0) await sleep(knobs.profile_ms);
  });
  if (knobs.fail_phase === 'ready') {
    process.stderr.write(`reference engine: failing before ready (fail_phase=ready, exit ${knobs.fail_exit_code})\n`);
    process.exit(knobs.fail_exit_code);
  }
}

/** What the stage's metadata and engine args make of this engine's outputs. */
interface EngineShape {
  modelStage: string | null;
  latent: boolean;
  audio: boolean;
  hiddenSize: number;
  defaults: Record<string, unknown>;
}

function engineShape(conn: WorkerConnection): EngineShape {
  const args = conn.welcome.engine_args as Record<string, unknown>;
  const metadata = conn.welcome.metadata as Record<string, unknown>;
  return {
    modelStage: typeof metadata['model_stage'] === 'string' ? metadata['model_stage'] : null,
    latent: metadata['engine_output_type'] === 'latent',
    audio: metadata['engine_output_type'] === 'audio',
    hiddenSize: typeof args['hidden_size'] === 'number' ? args['hidden_size'] : 64,
    defaults: (metadata['default_sampling_params'] ?? {}) as Record<string, unknown>,
  };
}

/** Reads an upstream payload; a float32 tensor must hold exactly its shape's worth of bytes. */
async function readTensor(conn: WorkerConnection, ref: PayloadRef): Promise<Buffer> {
  const bytes = await conn.getPayload(ref);
  if (ref.dtype === 'float32' && Array.isArray(ref.shape)) {
    const expected = ref.shape.reduce((a, b) => a * b, 1) * 4;
    if (bytes.byteLength !== expected)
      throw new Error(
        `upstream tensor ${ref.key}: ${bytes.byteLength} bytes for shape [${ref.shape.join(', ')}] (float32 needs ${expected})`,
      );
  }
  return bytes;
}

interface Generated {
  /** The reference engine's prompt tokens: its words and marks. */
  promptTokens: number;
  text: string;
  tokens: number[];
  hidden: number[];
  finish: string | null;
}

/** Streams the tokens as they come; undefined when the request was aborted on the way. */
async function streamTokens(
  shape: EngineShape,
  knobs: ReferenceKnobs,
  prompt: string,
  params: Record<string, unknown>,
  stream: RequestStream,
): Promise<Generated | undefined> {
  const promptTokens = prompt.match(/\w+|[^\w\s]/g)?.length ?? 0;
  const out: Generated = { promptTokens, text: '', tokens: [], hidden: [], finish: null };
  const options = { modelStage: shape.modelStage, ...(shape.latent ? { hiddenSize: shape.hiddenSize } : {}) };
  for (const t of generateTokens(prompt, params, options)) {
    if (stream.signal.aborted) return undefined;
    if (knobs.token_delay_ms > 0) await sleep(knobs.token_delay_ms);
    if (t.finish_reason !== 'eos') {
      out.tokens.push(t.token_id);
      out.text += t.text;
      stream.write({ kind: 'token', index: t.index, token_id: t.token_id, text: t.text });
    }
    if (t.hidden) out.hidden.push(...t.hidden);
    out.finish = t.finish_reason;
  }
  return out;
}

/** The final output: media and tensors go through the stage's connector (inline when small, shared memory above). */
async function finalOutput(conn: WorkerConnection, shape: EngineShape, g: Generated): Promise<JsonObject> {
  // An inline reference still carries `data_base64`, like the older shapes.
  const out: Record<string, unknown> = shape.audio
    ? {
        kind: 'audio',
        mime: 'audio/wav',
        text: g.text,
        token_ids: g.tokens,
        ...(await conn.putPayload(tokensToWav(g.tokens), { mime: 'audio/wav' })),
      }
    : { kind: 'final', text: g.text, token_ids: g.tokens, finish_reason: g.finish ?? 'length' };
  // What an engine reports for OpenAI's `usage`.
  out['usage'] = { prompt_tokens: g.promptTokens, completion_tokens: g.tokens.length };
  // Says so in every output: text from a stand-in must not be mistaken for a model's answer.
  out['reference_engine'] = true;
  if (shape.latent) {
    const f32 = new Float32Array(g.hidden);
    out['tensor'] = await conn.putPayload(new Uint8Array(f32.buffer), {
      dtype: 'float32',
      shape: [g.hidden.length / shape.hiddenSize, shape.hiddenSize],
    });
  }
  return out as JsonObject;
}

function serveRequests(conn: WorkerConnection, knobs: ReferenceKnobs, shape: EngineShape): void {
  conn.onRequest(async (req: WorkerRequest, stream) => {
    // Upstream tensors (payload references): read them by key now, acknowledge them once used.
    const received = new Map<PayloadRef, Buffer>();
    try {
      for (const ref of findPayloadRefs(req.input)) received.set(ref, await readTensor(conn, ref));
      if (knobs.wedge_on_request) {
        process.stderr.write('reference engine: wedged (wedge_on_request)\n');
        for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_000);
      }
      const params = { ...shape.defaults, ...(req.params as Record<string, unknown>) };
      const prompt = promptFromInput(req.input, (ref) => received.get(ref));
      const generated = await streamTokens(shape, knobs, prompt, params, stream);
      if (generated) stream.end(await finalOutput(conn, shape, generated));
    } finally {
      for (const ref of received.keys()) conn.ackPayload(ref);
    }
  });
}

async function main(): Promise<void> {
  const knobs = readKnobs(engineArgsFromEnv(process.env));
  if (faultBeforeHello(knobs)) return;
  const conn = await connectToOrchestrator({ phases: knobs.init_phases });
  const shape = engineShape(conn);
  await initialize(conn, knobs);
  serveRequests(conn, knobs, shape);
  if (knobs.hang_phase === 'ready') {
    process.stderr.write('reference engine: connected, never sending ready (hang_phase=ready)\n');
    return;
  }
  conn.ready({ engine: 'reference', model_stage: shape.modelStage, pid: process.pid });
}

main().catch((err: unknown) => {
  process.stderr.write(`reference engine failed: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
