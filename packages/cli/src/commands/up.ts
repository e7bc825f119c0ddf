import type { Logger } from 'pino';
import { OmniError, writeEventsAsJsonLines } from '@omnistage/core';
import type { CliValues } from '../args.js';
import { StopLifecycle } from '../lifecycle.js';
import { openSession, planSession, type Session } from '../session.js';
import { logFormat } from '../logger.js';
import { StatusDisplay } from '../status-display.js';
import { printWarnings } from './validate.js';
import { holdPipeline } from '../hold-pipeline.js';

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
    const lifecycle = new StopLifecycle(logger, (stop) => logger.info(`${stop.heard}, stopping the pipeline`));
    try {
      await holdPipeline(session, plan, values, logger, lifecycle, {
        whenUp: () => {
          const replicas = plan.stages.reduce((n, s) => n + s.replicas.length, 0);
          logger.info(
            `pipeline is up: ${plan.stages.length} stage(s), ${replicas} replica(s); press Ctrl-C to stop (to send it requests over HTTP, run \`omnistage serve\` instead)`,
          );
        },
      });
      return 0;
    } finally {
      lifecycle.close();
      display.detach();
    }
  } finally {
    closeEvents();
  }
}
