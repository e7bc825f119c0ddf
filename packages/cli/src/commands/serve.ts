import type { Logger } from 'pino';
import { OmniError } from '@omnistage/core';
import { OmniServer, ServerMetrics, isLoopbackHost, servePipeline } from '@omnistage/server';
import type { CliValues } from '../args.js';
import { servedModelName, serveOptions } from '../serve-options.js';
import { openSession, planSession } from '../session.js';
import { logFormat } from '../logger.js';
import { StatusDisplay } from '../status-display.js';
import { holdPipeline } from '../hold-pipeline.js';
import { StopLifecycle } from '../lifecycle.js';
import { balanceOption } from './run.js';
import { openEventsFile } from './up.js';
import { printWarnings } from './validate.js';
import { forgetStopSignal } from '../stop-signal.js';

/**
 * `omnistage serve FILE`: listens first (a taken port fails before any replica starts; /health
 * answers, the rest 503 while coming up), brings the pipeline up, serves the OpenAI-compatible API
 * until SIGTERM/SIGINT, then drains (readiness and new requests 503, in-flight ones finish within
 * --drain-timeout), closes the server and tears the pipeline down as `up` does. Exit 0 when every
 * request finished in time; 1 when some had to be aborted or a stage lost its last replica.
 */
export async function serveCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const opts = serveOptions(values, process.env);
  const balance = balanceOption(values);
  const session = await openSession(file, values, logger, 'launch');
  const closeEvents = values.events ? openEventsFile(session, values.events) : () => {};
  const metrics = new ServerMetrics();
  const offMetrics = metrics.observe(session.omni.events);
  const served = servedModelName(values, session.config);
  const server = new OmniServer({
    logger,
    servedModelName: served,
    metrics,
    metricsPublic: opts.metricsPublic,
    allowedOrigins: opts.allowedOrigins,
    maxInflight: opts.maxInflight,
    bodyLimitBytes: opts.bodyLimitBytes,
    ...(opts.apiKey === undefined ? {} : { apiKey: opts.apiKey }),
    ...(opts.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: opts.requestTimeoutMs }),
  });
  if (!isLoopbackHost(opts.host) && opts.apiKey === undefined) {
    logger.warn(
      { code: 'OMNI_WARN_NO_API_KEY' },
      `listening on ${opts.host} without an API key: anyone who can reach this address can use the pipeline (set --api-key or OMNISTAGE_API_KEY)`,
    );
  }
  const lifecycle = new StopLifecycle(logger, (stop) => {
    server.stopAccepting();
    logger.info(
      `${stop.heard}: draining (new requests get 503; in-flight ones have ${opts.drainTimeoutMs / 1000} s to finish)`,
    );
  });
  let display: StatusDisplay | null = null;
  let aborted = 0;
  try {
    const plan = await planSession(session);
    printWarnings(plan.warnings, values);
    display = new StatusDisplay(plan, { json: logFormat(values['log-format']) === 'json' ? logger : null });
    display.attach(session.omni.events);
    const shown = display;
    let url = '';
    await holdPipeline(session, plan, values, logger, lifecycle, {
      beforeBringUp: async () => {
        url = await server.listen(opts.host, opts.port);
        logger.info(`listening on ${url}; bringing the pipeline up (GET ${url}/health/ready turns 200 when it serves)`);
      },
      whenUp: (pipeline) => {
        server.attach(
          servePipeline(session.omni, pipeline, {
            balance,
            maxInflightPerReplica: opts.maxInflightPerReplica,
            speechStage: opts.speechStage,
          }),
        );
        shown.showLine(`serving "${served}" at ${url}/v1 (OpenAI-compatible); press Ctrl-C to drain and stop`);
      },
      beforeTeardown: async () => {
        aborted = await server.drain(opts.drainTimeoutMs);
        await server.close();
      },
    });
    if (aborted > 0) {
      throw new OmniError(
        'OMNI_DRAIN_TIMEOUT',
        `${aborted} request(s) were still running after --drain-timeout (${opts.drainTimeoutMs / 1000} s); they were aborted and answered 503`,
        {
          hint: 'raise --drain-timeout to let long requests finish; the pipeline was torn down',
        },
      );
    }
    logger.info('drained and stopped');
    forgetStopSignal();
    return 0;
  } finally {
    lifecycle.close();
    display?.detach();
    await server.close();
    offMetrics();
    closeEvents();
  }
}
