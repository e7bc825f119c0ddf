import type { Logger } from 'pino';
import { bringUp, type BringUpOptions, type InitPlan, type RunningPipeline } from '@omnistage/core';
import type { CliValues } from './args.js';
import { openHeadMode, type HeadMode } from './head-mode.js';
import type { StopLifecycle } from './lifecycle.js';
import type { Session } from './session.js';

/** What a command adds to the shared bring-up, run and teardown of `up` and `serve`. */
export interface HoldSteps {
  /** After head mode is set up, before any replica starts (serve: listen, so a taken port fails first). */
  beforeBringUp?(): Promise<void>;
  /** The pipeline is up (and, in head mode, every stage has its ready replicas). */
  whenUp(pipeline: RunningPipeline): void;
  /** A stop was requested or the pipeline failed; runs before the head withdraws and replicas stop (serve: drain). */
  beforeTeardown?(): Promise<void>;
}

/** The bring-up options every long-running command takes from its session. */
export function sessionBringUpOptions(
  session: Session,
  signal: AbortSignal,
): Pick<BringUpOptions, 'signal' | 'stageInitTimeoutS' | 'initTimeoutS' | 'onReplicaLine'> {
  return {
    signal,
    ...(session.stageInitTimeoutS === undefined ? {} : { stageInitTimeoutS: session.stageInitTimeoutS }),
    ...(session.initTimeoutS === undefined ? {} : { initTimeoutS: session.initTimeoutS }),
    ...(session.onReplicaLine ? { onReplicaLine: session.onReplicaLine } : {}),
  };
}

/**
 * Brings the plan up (as a head with `--head`), keeps it up until `lifecycle` is stopped or a stage
 * fails, then tears down in the one safe order: the command's own step (drain), the head withdrawn
 * (agents stop restarting replicas the teardown is about to stop), the replicas stopped. A stop
 * during the bring-up cancels it. Throws the pipeline's failure, if that is what ended it.
 */
export async function holdPipeline(
  session: Session,
  plan: InitPlan,
  values: CliValues,
  logger: Logger,
  lifecycle: StopLifecycle,
  steps: HoldSteps,
): Promise<void> {
  let headMode: HeadMode | null = null;
  let pipeline: RunningPipeline | null = null;
  try {
    if (values.head) headMode = await openHeadMode(session, plan, values, logger);
    await steps.beforeBringUp?.();
    pipeline = await bringUp(session.omni, plan, {
      ...sessionBringUpOptions(session, lifecycle.signal),
      ...headMode?.bringUp,
    });
    await headMode?.waitReady(pipeline, lifecycle.signal);
    steps.whenUp(pipeline);
    const failure = await lifecycle.untilStopped(pipeline.failed);
    await steps.beforeTeardown?.();
    await headMode?.close();
    await pipeline.stop(lifecycle.request?.reason ?? 'a replica failed');
    if (failure) throw failure;
  } finally {
    await pipeline?.stop(`${values.head ? 'head' : 'command'} finished`);
    await headMode?.close();
  }
}
