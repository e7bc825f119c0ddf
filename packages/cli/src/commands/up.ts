import type { Logger } from 'pino';
import { OmniError, bringUp, writeEventsAsJsonLines, type RunningPipeline } from '@omnistage/core';
import type { CliValues } from '../args.js';
import { noteStopSignal } from '../stop-signal.js';
import { openSession, planSession, type Session } from '../session.js';
import { logFormat } from '../logger.js';
import { StatusDisplay } from '../status-display.js';
import { printWarnings } from './validate.js';
import { openHeadMode, type HeadMode } from '../head-mode.js';

/**
 * Stops on SIGINT/SIGTERM: during bring-up the signal cancels (everything started is stopped); once
 * up, it tears the pipeline down; either way the exit status is 128 + the signal (stop-signal.ts).
 * A second signal does not skip teardown —
 * leaving GPU-holding orphans behind is what users complain about most.
 */
export function onStopSignals(handler: (signal: NodeJS.Signals) => void): () => void {
  const listener = (signal: NodeJS.Signals): void => {
    noteStopSignal(signal);
    handler(signal);
  };
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
  return () => {
    process.off('SIGINT', listener);
    process.off('SIGTERM', listener);
  };
}

/** `--events FILE`: a file that cannot be opened is a usage error (exit 2), found before anything starts. */
export function openEventsFile(session: Session, file: string): () => void {
  try {
    return writeEventsAsJsonLines(session.omni.events, file);
  } catch (err) {
    throw new OmniError('OMNI_USAGE', `cannot write the events file ${file}: ${(err as Error).message}`, {
      cause: err,
      hint: '--events needs a writable path (its directory must exist)',
    });
  }
}

/** `omnistage up FILE`: bring up, show live status, stay up until a signal, tear down. */
export async function upCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const session = await openSession(file, values, logger, 'launch');
  const closeEvents = values.events ? openEventsFile(session, values.events) : () => {};
  try {
    const plan = await planSession(session);
    printWarnings(plan.warnings, values);
    const display = new StatusDisplay(plan, { json: logFormat(values['log-format']) === 'json' ? logger : null });
    display.attach(session.omni.events);
    const cancel = new AbortController();
    let stopSignal: NodeJS.Signals | null = null;
    let pipeline: RunningPipeline | null = null;
    let wake: () => void = () => {};
    const stopped = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const offSignals = onStopSignals((signal) => {
      if (stopSignal) return;
      stopSignal = signal;
      logger.info(`received ${signal}, stopping the pipeline`);
      cancel.abort();
      wake();
    });
    let headMode: HeadMode | null = null;
    try {
      if (values.head) headMode = await openHeadMode(session, plan, values, logger);
      pipeline = await bringUp(session.omni, headMode?.plan ?? plan, {
        signal: cancel.signal,
        ...(session.stageInitTimeoutS === undefined ? {} : { stageInitTimeoutS: session.stageInitTimeoutS }),
        ...(session.initTimeoutS === undefined ? {} : { initTimeoutS: session.initTimeoutS }),
        ...(session.onReplicaLine ? { onReplicaLine: session.onReplicaLine } : {}),
        ...headMode?.bringUp,
      });
      await headMode?.waitReady(pipeline, cancel.signal);
      const replicas = plan.stages.reduce((n, s) => n + s.replicas.length, 0);
      logger.info(
        `pipeline is up: ${plan.stages.length} stage(s), ${replicas} replica(s); press Ctrl-C to stop (to send it requests over HTTP, run \`omnistage serve\` instead)`,
      );
      let failure: unknown = null;
      await Promise.race([stopped, pipeline.failed.catch((err: unknown) => (failure = err))]);
      // Withdraw the head first: agents stop restarting replicas the teardown is about to shut down.
      await headMode?.close();
      await pipeline.stop(stopSignal ? `signal ${stopSignal}` : 'a replica failed');
      if (failure) throw failure;
      return 0;
    } finally {
      offSignals();
      display.detach();
      await pipeline?.stop('up finished');
      await headMode?.close();
    }
  } finally {
    closeEvents();
  }
}
