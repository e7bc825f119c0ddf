import type { Logger } from 'pino';
import { OmniError, type BringUpOptions, type InitPlan, type RunningPipeline } from '@omnistage/core';
import {
  ClusterHead,
  EtcdDiscovery,
  checkTlsUse,
  fingerprintHash,
  markAcrossHosts,
  insecureSecret,
  pipelineFingerprint,
} from '@omnistage/core/cluster';
import type { CliValues } from './args.js';
import { clusterOptions, headOptions } from './cluster-options.js';
import type { Session } from './session.js';
import { tlsOptions } from './tls-options.js';

/** What `serve --head` / `up --head` add to a bring-up: which replicas start here, the head itself, readiness. */
export interface HeadMode {
  /** The plan as a head runs it: edges that may cross hosts carried inline. */
  plan: InitPlan;
  bringUp: Pick<BringUpOptions, 'launchHere' | 'beforeLaunch'>;
  /** Waits until every stage has its `runtime.min_ready` (or `--min-ready`) live replicas (init deadline), naming stages still waiting and hosts seen. */
  waitReady(pipeline: RunningPipeline, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** The stages a head runs itself: `--local-stages`, or every stage whose `num_replicas` is not 0. */
function localStagesOf(session: Session, plan: InitPlan, given: number[] | undefined): Set<number> {
  if (given !== undefined) {
    for (const id of given) {
      if (!plan.stages.some((s) => s.stage_id === id)) {
        throw new OmniError('OMNI_USAGE', `--local-stages names stage ${id}, which the pipeline does not have`, {
          hint: `stage ids: ${plan.stages.map((s) => s.stage_id).join(', ')}`,
        });
      }
    }
    return new Set(given);
  }
  return new Set(
    session.config.stages
      .filter((s) => (s.runtime as { num_replicas?: unknown }).num_replicas !== 0)
      .map((s) => s.stage_id),
  );
}

/**
 * The plan as a head sees it (`plan --head`): which stages run here, and the edges that may cross
 * hosts marked, so the transfers table says how each edge carries payloads.
 */
export function planAsHead(
  session: Session,
  plan: InitPlan,
  values: CliValues,
): { plan: InitPlan; local: Set<number> } {
  const local = localStagesOf(session, plan, headOptions(values, null).localStages);
  return { plan: markAcrossHosts(plan, local).plan, local };
}

/** Sets up head mode for a session whose plan was made (nothing runs until the bring-up calls back). */
export async function openHeadMode(
  session: Session,
  plan: InitPlan,
  values: CliValues,
  logger: Logger,
): Promise<HeadMode> {
  const cluster = await clusterOptions(values, 'serve --head');
  const head = headOptions(values, cluster.secret);
  const tls = await tlsOptions(values, 'server', head.advertise ?? head.bindHost);
  if (tls !== undefined) checkTlsUse(tls, 'client');
  const local = localStagesOf(session, plan, head.localStages);
  const { plan: headPlan, crossing } = markAcrossHosts(plan, local);
  for (const t of crossing)
    logger.info(
      `edge ${t.from} -> ${t.to} may cross hosts: payloads in shared memory are fetched from the producer's host over TCP${tls === undefined ? '' : ' (mutual TLS)'}`,
    );
  const discovery = await EtcdDiscovery.connect(cluster.etcd);
  const fingerprint = pipelineFingerprint(session.config);
  let clusterHead: ClusterHead | null = null;
  const initMs = (session.initTimeoutS ?? 600) * 1000;
  const minReadyOf = (stageId: number): number =>
    head.minReady ?? session.config.stages.find((s) => s.stage_id === stageId)?.runtime.min_ready ?? 1;
  return {
    plan: headPlan,
    bringUp: {
      launchHere: (replica) => local.has(replica.stage_id),
      beforeLaunch: async (control, pipeline) => {
        clusterHead = await ClusterHead.start({ events: session.omni.events, logger }, pipeline, control, {
          discovery,
          secret: cluster.secret ?? insecureSecret(plan.run_id),
          hostId: cluster.hostId,
          bindHost: head.bindHost,
          port: head.port,
          ...(head.advertise === undefined ? {} : { advertise: head.advertise }),
          ttlS: cluster.ttlS,
          ...(tls === undefined ? {} : { tls }),
          payloadPort: head.payloadPort,
          ...(head.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: head.maxPayloadBytes }),
          fingerprint,
          configHash: fingerprintHash(fingerprint),
          hooks: session.omni.hooks,
        });
        logger.info(
          `head of run ${plan.run_id}: replicas dial ${clusterHead.control}${tls === undefined ? '' : ' (mutual TLS)'}; stages run here: ${[...local].join(', ') || 'none'}`,
        );
      },
    },
    waitReady: (_pipeline, signal) => clusterHead?.waitReady(minReadyOf, initMs, signal) ?? Promise.resolve(),
    close: async () => {
      await clusterHead?.close();
      await discovery.close();
    },
  };
}
