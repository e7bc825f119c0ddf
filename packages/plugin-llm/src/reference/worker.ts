/**
 * The reference LLM engine: a real worker process that speaks omnistage's control protocol and
 * generates text token by token, deterministically (see generate.ts). Started by the `reference`
 * engine of stage type `llm`; its test knobs (knobs.ts) reproduce slow, failing and hanging engines.
 */
import { connectToOrchestrator, type PayloadRef, type WorkerConnection } from '@omnistage/core/worker';
import { engineArgsFromEnv, readKnobs, type ReferenceKnobs } from './knobs.js';
import { serveRequest } from './serve-request.js';

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

/** Serves each request as it streams in (reference/serve-request.ts: causal, window by window for audio). */
function serveRequests(conn: WorkerConnection, knobs: ReferenceKnobs, shape: EngineShape): void {
  const stage = { conn, knobs, ...shape, readTensor: (ref: PayloadRef) => readTensor(conn, ref) };
  conn.onRequest(async (req, stream) => {
    if (knobs.wedge_on_request) {
      process.stderr.write('reference engine: wedged (wedge_on_request)\n');
      for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_000);
    }
    await serveRequest(stage, req, stream);
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
