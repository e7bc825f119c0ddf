import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { OmniHooks } from '../hooks/hooks.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { RunServices } from '../orchestrate/run-services.js';
import type { ReplicaPlan, StagePlan } from '../planning/types.js';
import { ReplicaWatch } from '../pipeline/replica-watch.js';
import { runPhase } from '../pipeline/run-phase.js';
import type { ReplicaRecord } from './discovery.js';

/** How long the head gives an HTTP engine that its agent already found ready to answer the head too. */
const REMOTE_HTTP_ATTACH_MS = 30_000;

/** A replica record of an HTTP engine its agent found ready. */
export type AdvertisedHttpRecord = ReplicaRecord & { readiness_url: string };

export function isAdvertisedHttp(record: ReplicaRecord): record is AdvertisedHttpRecord {
  return record.state === 'running' && typeof record.readiness_url === 'string';
}

/** The head's plan of an HTTP engine an agent runs: its own stage plan, reached at the address the agent advertised. */
export function remoteHttpPlan(template: ReplicaPlan, record: AdvertisedHttpRecord): ReplicaPlan {
  const url = new URL(record.readiness_url);
  return {
    ...template,
    replica_id: record.replica_id,
    launch_mode: 'remote',
    metadata: { ...template.metadata, replica_id: record.replica_id },
    worker: { ...template.worker, readiness_url: record.readiness_url, port: Number(url.port) },
  };
}

/** What attaching the head to a remote HTTP engine needs. */
export interface RemoteHttpAttach {
  readonly hooks: OmniHooks;
  readonly services: RunServices;
  readonly runId: string;
  readonly runDir: string;
  /** Aborted when the head closes or the replica leaves before it is attached. */
  readonly signal: AbortSignal;
}

/**
 * Attaches the head to an HTTP engine (`vllm serve`) that an agent started on another host,
 * through the `attach` hook as a local replica is: the engine plugin's tap polls its readiness URL
 * at the advertised address and builds the connection the router uses, and liveness re-checks it
 * the same way. Bounded by a deadline and `signal`; the process itself is its agent's business.
 */
export async function attachRemoteHttp(
  a: RemoteHttpAttach,
  stage: StagePlan,
  plan: ReplicaPlan,
  remote: ReplicaProcessHandle,
): Promise<ReplicaConnection> {
  const watch = new ReplicaWatch(plan, a.signal, { deadline: Date.now() + REMOTE_HTTP_ATTACH_MS });
  const logger = a.services.logger.child({ stage: plan.stage_id, replica: plan.replica_id });
  const rt: ReplicaRuntime = {
    replica: plan,
    stage,
    runId: a.runId,
    runDir: a.runDir,
    lockDir: '',
    signal: watch.signal,
    deadline: Date.now() + REMOTE_HTTP_ATTACH_MS,
    logger,
    events: a.services.events,
    progress: (step, detail) => Object.assign(watch.progress, { step, detail: detail ?? null }),
    onLine: (stream, line) => logger.info({ stream }, line),
    fail: (err) => watch.fail(err),
  };
  try {
    return await runPhase<ReplicaConnection>(
      { progress: watch.progress, events: a.services.events, signal: watch.signal },
      'attach',
      { hook: a.hooks.attach, mode: 'bail', args: [remote, rt] },
    );
  } finally {
    watch.dispose();
  }
}
