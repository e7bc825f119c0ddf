import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  OmniError,
  bringUp,
  createRouter,
  type BalancePolicy,
  formatError,
  toOmniError,
  writeEventsAsJsonLines,
  type PipelineRouter,
  type RunningPipeline,
} from '@omnistage/core';
import type { CliValues } from '../args.js';
import { sessionBringUpOptions } from '../hold-pipeline.js';
import { StopLifecycle } from '../lifecycle.js';
import { checkOutDir, recordOutput, type RunOutputRecord } from '../output-writer.js';
import { openSession, planSession } from '../session.js';
import { printWarnings } from './validate.js';

function isMediaChunk(data: unknown): boolean {
  const kind = (data as { kind?: unknown } | null)?.kind;
  return kind === 'image' || kind === 'audio';
}

export function balanceOption(values: CliValues): BalancePolicy {
  const b = values.balance ?? 'round-robin';
  if (b !== 'round-robin' && b !== 'least-inflight') {
    throw new OmniError('OMNI_USAGE', `--balance must be round-robin or least-inflight, got "${b}"`);
  }
  return b;
}

function readInputs(values: CliValues): string[] {
  const inputs = [...(values.input ?? [])];
  if (values['input-file'] !== undefined) {
    let text: string;
    try {
      text = readFileSync(values['input-file'], 'utf8');
    } catch (err) {
      throw new OmniError(
        'OMNI_USAGE',
        `--input-file ${values['input-file']} cannot be read: ${(err as Error).message}`,
        {
          hint: 'give a text file with one request per line',
        },
      );
    }
    inputs.push(
      ...text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== ''),
    );
  }
  if (inputs.length === 0) {
    throw new OmniError('OMNI_USAGE', '`omnistage run` needs at least one request', {
      hint: 'pass --input "your prompt" or --input-file prompts.txt',
    });
  }
  return inputs;
}

/** Sends one request and prints (or writes) its outputs as they come; false when it failed. */
async function runOne(
  router: PipelineRouter,
  input: string,
  requestId: string,
  o: { outDir: string; values: CliValues; cancel: AbortSignal },
): Promise<boolean> {
  const counts = new Map<number, number>();
  try {
    for await (const out of router.generate(input, { requestId, signal: o.cancel })) {
      // Media chunks are outputs too (num_outputs_per_prompt > 1 streams all but the last image).
      if (out.kind !== 'final' && !isMediaChunk(out.data)) continue;
      const n = counts.get(out.stage_id) ?? 0;
      counts.set(out.stage_id, n + 1);
      const rec: RunOutputRecord = recordOutput(out, o.outDir, n);
      if (o.values.json) process.stdout.write(`${JSON.stringify(rec)}\n`);
      else
        process.stdout.write(
          `[${rec.request_id}] stage ${rec.stage_id} (replica ${rec.replica_id}) ${rec.type}: ${rec.text ?? rec.path}\n`,
        );
    }
    return true;
  } catch (err) {
    // Interrupted: one line for the run (below), not one per request.
    if (o.cancel.aborted) return false;
    const e = toOmniError(err, 'OMNI_REQUEST_FAILED');
    process.stderr.write(`[${requestId}] ${formatError(e)}\n`);
    return false;
  }
}

/**
 * `omnistage run FILE --input TEXT`: brings the pipeline up, sends every input through all stages
 * concurrently, prints (or writes) the final outputs, tears down. Exit 1 if any request failed.
 */
export async function runCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const inputs = readInputs(values);
  // --balance (checked before anything is read) wins over what a strategy file's `routing` derived.
  const explicitBalance = values.balance === undefined ? undefined : balanceOption(values);
  const outDir = values.out ?? 'omnistage-out';
  checkOutDir(outDir);
  const session = await openSession(file, values, logger, 'launch');
  const balance = explicitBalance ?? session.config.balance ?? 'round-robin';
  const closeEvents = values.events ? writeEventsAsJsonLines(session.omni.events, values.events) : () => {};
  const lifecycle = new StopLifecycle(logger, (stop) =>
    logger.warn({ code: 'OMNI_WARN_STOPPING_ON_SIGNAL' }, `${stop.heard}, stopping`),
  );
  const cancel = lifecycle.signal;
  // Every concurrent request listens on the one cancel signal.
  setMaxListeners(inputs.length * 4 + 16, cancel);
  let pipeline: RunningPipeline | null = null;
  try {
    const plan = await planSession(session);
    printWarnings(plan.warnings, values);
    pipeline = await bringUp(session.omni, plan, sessionBringUpOptions(session, cancel));
    const p = pipeline;
    const router = createRouter(p, { balance });
    const started = performance.now();
    const failures = (
      await Promise.all(inputs.map((input, i) => runOne(router, input, `r${i + 1}`, { outDir, values, cancel })))
    ).filter((ok) => !ok).length;
    logger.info(
      `${inputs.length - failures}/${inputs.length} request(s) completed in ${Math.round(performance.now() - started)} ms`,
    );
    const stand_ins = plan.stages
      .filter((s) => s.replicas.length > 0 && s.engine.startsWith('reference'))
      .map((s) => s.stage_id);
    if (stand_ins.length > 0) {
      logger.info(
        `stage(s) ${stand_ins.join(', ')} ran on reference engines: stand-ins that produce deterministic test output, not a model's (use --engine vllm or the stage's engine on GPUs)`,
      );
    }
    if (lifecycle.request) {
      await pipeline.stop('interrupted');
      throw new OmniError(
        'OMNI_CANCELLED',
        `interrupted by ${lifecycle.request.by}: ${inputs.length - failures} of ${inputs.length} request(s) completed before it`,
        {
          hint: 'the pipeline was torn down; outputs of the completed requests were written',
        },
      );
    }
    if (failures > 0) {
      await pipeline.stop('requests failed');
      throw new OmniError('OMNI_REQUEST_FAILED', `${failures} of ${inputs.length} request(s) failed`, {
        hint: 'see the errors above; the pipeline was torn down',
      });
    }
    return 0;
  } finally {
    await pipeline?.stop('run finished');
    lifecycle.close();
    closeEvents();
  }
}
