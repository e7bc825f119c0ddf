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
  type WorkerRequest,
} from '@omnistage/core/worker';
import { generateTokens } from './generate.js';
import { engineArgsFromEnv, readKnobs } from './knobs.js';
import { promptFromInput } from './prompt-from-input.js';
import { tokensToWav } from './wav.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Hangs "forever" but still dies with the orchestrator (stdin EOF), like a stuck engine would not. */
function hang(): void {
  setInterval(() => undefined, 1 << 30);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

async function main(): Promise<void> {
  const knobs = readKnobs(engineArgsFromEnv(process.env));
  if (knobs.fail_phase === 'hello') {
    process.stderr.write(`reference engine: failing before hello (fail_phase=hello, exit ${knobs.fail_exit_code})\n`);
    process.exit(knobs.fail_exit_code);
  }
  if (knobs.hang_phase === 'hello') {
    process.stderr.write('reference engine: hanging before hello (hang_phase=hello)\n');
    return hang();
  }
  const conn = await connectToOrchestrator({ phases: knobs.init_phases });
  const args = conn.welcome.engine_args as Record<string, unknown>;
  const metadata = conn.welcome.metadata as Record<string, unknown>;
  const modelStage = typeof metadata['model_stage'] === 'string' ? metadata['model_stage'] : null;
  const latent = metadata['engine_output_type'] === 'latent';
  const audio = metadata['engine_output_type'] === 'audio';
  const hiddenSize = typeof args['hidden_size'] === 'number' ? args['hidden_size'] : 64;
  const defaults = (metadata['default_sampling_params'] ?? {}) as Record<string, unknown>;

  if (knobs.init_delay_ms > 0) await sleep(knobs.init_delay_ms);
  // Load with the devices shared, profile alone (a plain `sleep` when phases are off or not granted).
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

  /** Reads an upstream payload; a float32 tensor must hold exactly its shape's worth of bytes. */
  const readTensor = async (ref: PayloadRef): Promise<Buffer> => {
    const bytes = await conn.getPayload(ref);
    if (ref.dtype === 'float32' && Array.isArray(ref.shape)) {
      const expected = ref.shape.reduce((a, b) => a * b, 1) * 4;
      if (bytes.byteLength !== expected)
        throw new Error(
          `upstream tensor ${ref.key}: ${bytes.byteLength} bytes for shape [${ref.shape.join(', ')}] (float32 needs ${expected})`,
        );
    }
    return bytes;
  };

  const serve = async (
    req: WorkerRequest,
    stream: RequestStream,
    read: (ref: PayloadRef) => Uint8Array | undefined,
  ): Promise<void> => {
    if (knobs.wedge_on_request) {
      process.stderr.write('reference engine: wedged (wedge_on_request)\n');
      for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_000);
    }
    const params = { ...defaults, ...(req.params as Record<string, unknown>) };
    const prompt = promptFromInput(req.input, read);
    const tokens: number[] = [];
    const hidden: number[] = [];
    let text = '';
    let finish: string | null = null;
    for (const t of generateTokens(prompt, params, { modelStage, ...(latent ? { hiddenSize } : {}) })) {
      if (stream.signal.aborted) return;
      if (knobs.token_delay_ms > 0) await sleep(knobs.token_delay_ms);
      if (t.finish_reason !== 'eos') {
        tokens.push(t.token_id);
        text += t.text;
        stream.write({ kind: 'token', index: t.index, token_id: t.token_id, text: t.text });
      }
      if (t.hidden) hidden.push(...t.hidden);
      finish = t.finish_reason;
    }
    // Media and tensors go through the stage's connector: inline when small, shared memory above
    // the threshold (an inline reference still carries `data_base64`, like the older shapes).
    const out: Record<string, unknown> = audio
      ? {
          kind: 'audio',
          mime: 'audio/wav',
          text,
          token_ids: tokens,
          ...(await conn.putPayload(tokensToWav(tokens), { mime: 'audio/wav' })),
        }
      : { kind: 'final', text, token_ids: tokens, finish_reason: finish ?? 'length' };
    // Says so in every output: text from a stand-in must not be mistaken for a model's answer.
    out['reference_engine'] = true;
    if (latent) {
      const f32 = new Float32Array(hidden);
      out['tensor'] = await conn.putPayload(new Uint8Array(f32.buffer), {
        dtype: 'float32',
        shape: [hidden.length / hiddenSize, hiddenSize],
      });
    }
    stream.end(out as JsonObject);
  };

  conn.onRequest(async (req, stream) => {
    // Upstream tensors (payload references): read them by key now, acknowledge them once used.
    const received = new Map<PayloadRef, Buffer>();
    try {
      for (const ref of findPayloadRefs(req.input)) received.set(ref, await readTensor(ref));
      await serve(req, stream, (ref) => received.get(ref));
    } finally {
      for (const ref of received.keys()) conn.ackPayload(ref);
    }
  });

  if (knobs.hang_phase === 'ready') {
    process.stderr.write('reference engine: connected, never sending ready (hang_phase=ready)\n');
    return;
  }
  conn.ready({ engine: 'reference', model_stage: modelStage, pid: process.pid });
}

main().catch((err: unknown) => {
  process.stderr.write(`reference engine failed: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
