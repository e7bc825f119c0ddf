/**
 * The reference diffusion engine: a worker process that renders a PNG per request from the
 * conditioning (prompt text or an upstream stage's output) and the seed, through
 * `num_inference_steps` refinement steps (see reference-renderer.ts).
 */
import { connectToOrchestrator, findPayloadRefs, type JsonObject, type PayloadRef } from '@omnistage/core/worker';
import { renderReferenceImage } from '../reference-renderer.js';
import { conditioningFromInput } from './conditioning.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function engineArgsFromEnv(): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(process.env.OMNISTAGE_ENGINE_ARGS ?? '{}');
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

async function main(): Promise<void> {
  const early = engineArgsFromEnv();
  const failCode = typeof early['fail_exit_code'] === 'number' ? early['fail_exit_code'] : 1;
  if (early['fail_phase'] === 'hello') process.exit(failCode);
  const conn = await connectToOrchestrator();
  const args = conn.welcome.engine_args as Record<string, unknown>;
  const defaults = ((conn.welcome.metadata as Record<string, unknown>)['default_sampling_params'] ?? {}) as Record<
    string,
    unknown
  >;
  if (typeof args['init_delay_ms'] === 'number') await sleep(args['init_delay_ms']);
  if (args['fail_phase'] === 'ready') process.exit(failCode);

  conn.onRequest(async (req, stream) => {
    const p = { ...defaults, ...(req.params as Record<string, unknown>) };
    const width = num(p['width'], 512);
    const height = num(p['height'], 512);
    const steps = num(p['num_inference_steps'], 20);
    const count = Math.max(1, Math.trunc(num(p['num_outputs_per_prompt'], 1)));
    const seed = Math.trunc(num(p['seed'], 0));
    try {
      // An upstream tensor (a payload reference) is read by key here...
      const received = new Map<PayloadRef, Buffer>();
      for (const ref of findPayloadRefs(req.input)) received.set(ref, await conn.getPayload(ref));
      const conditioning = conditioningFromInput(req.input, (ref) => received.get(ref));
      for (let i = 0; i < count; i++) {
        if (stream.signal.aborted) return;
        const png = renderReferenceImage({
          conditioning,
          seed: seed + i,
          steps,
          width,
          height,
          guidance: num(p['guidance_scale'], 1),
          ...(typeof p['negative_prompt'] === 'string' ? { negativePrompt: p['negative_prompt'] } : {}),
        });
        // The PNG goes through the stage's connector: inline (with `data_base64`) when small,
        // shared memory above the threshold; the output is the reference plus the image fields.
        const out = {
          kind: 'image',
          mime: 'image/png',
          width,
          height,
          index: i,
          reference_engine: true,
          ...(await conn.putPayload(png, { mime: 'image/png' })),
        } as JsonObject;
        if (i === count - 1) stream.end(out);
        else stream.write(out);
        await sleep(0);
      }
    } finally {
      // ...and acknowledged once the images are rendered (nothing is sent for inline ones).
      for (const ref of findPayloadRefs(req.input)) conn.ackPayload(ref);
    }
  });
  conn.ready({ engine: 'reference-diffusion', pid: process.pid });
}

main().catch((err: unknown) => {
  process.stderr.write(`reference diffusion engine failed: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
