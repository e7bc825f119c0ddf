import type { Logger } from 'pino';
import { OmniError, bringUp, type RunningPipeline } from '@omnistage/core';
import { OmniServer, ServerMetrics, isLoopbackHost, servePipeline } from '@omnistage/server';
import type { CliValues } from '../args.js';
import { servedModelName, serveOptions } from '../serve-options.js';
import { openSession, planSession } from '../session.js';
import { logFormat } from '../logger.js';
import { StatusDisplay } from '../status-display.js';
import { openHeadMode, type HeadMode } from '../head-mode.js';
import { balanceOption } from './run.js';
import { onStopSignals, openEventsFile } from './up.js';
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
  const cancel = new AbortController();
  let stopSignal: NodeJS.Signals | null = null;
  let wake: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const offSignals = onStopSignals((signal) => {
    if (stopSignal) return;
    stopSignal = signal;
    server.stopAccepting();
    logger.info(
      `received ${signal}: draining (new requests get 503; in-flight ones have ${opts.drainTimeoutMs / 1000} s to finish)`,
    );
    cancel.abort();
    wake();
  });
  let pipeline: RunningPipeline | null = null;
  let display: StatusDisplay | null = null;
  let headMode: HeadMode | null = null;
  try {
    const plan = await planSession(session);
    printWarnings(plan.warnings, values);
    display = new StatusDisplay(plan, { json: logFormat(values['log-format']) === 'json' ? logger : null });
    display.attach(session.omni.events);
    if (values.head) headMode = await openHeadMode(session, plan, values, logger);
    const url = await server.listen(opts.host, opts.port);
    logger.info(`listening on ${url}; bringing the pipeline up (GET ${url}/health/ready turns 200 when it serves)`);
    pipeline = await bringUp(session.omni, headMode?.plan ?? plan, {
      signal: cancel.signal,
      ...(session.stageInitTimeoutS === undefined ? {} : { stageInitTimeoutS: session.stageInitTimeoutS }),
      ...(session.initTimeoutS === undefined ? {} : { initTimeoutS: session.initTimeoutS }),
      ...(session.onReplicaLine ? { onReplicaLine: session.onReplicaLine } : {}),
      ...headMode?.bringUp,
    });
    await headMode?.waitReady(pipeline, cancel.signal);
    server.attach(
      servePipeline(session.omni, pipeline, { balance, maxInflightPerReplica: opts.maxInflightPerReplica }),
    );
    display.showLine(`serving "${served}" at ${url}/v1 (OpenAI-compatible); press Ctrl-C to drain and stop`);
    let failure: unknown = null;
    await Promise.race([stopped, pipeline.failed.catch((err: unknown) => (failure = err))]);
    const aborted = await server.drain(opts.drainTimeoutMs);
    await server.close();
    // Withdraw the head first: agents stop restarting replicas the teardown is about to shut down.
    await headMode?.close();
    await pipeline.stop(stopSignal ? `signal ${stopSignal}` : 'a replica failed');
    if (failure) throw failure;
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
    offSignals();
    display?.detach();
    await server.close();
    await pipeline?.stop('serve finished');
    await headMode?.close();
    offMetrics();
    closeEvents();
  }
}
