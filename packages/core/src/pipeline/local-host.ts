import { randomBytes } from 'node:crypto';
import type { ReplicaPlan } from '../planning/types.js';
import type { ControlServer } from '../control/server.js';
import { controlEnv, type JsonObject } from '../control/protocol.js';
import { attachLocal } from '../builtins/attach.js';
import { spawnLocal } from '../builtins/spawn.js';
import type { RunningPipeline, StartedReplica } from '../orchestrate/running-pipeline.js';
import type { AnnouncedWorker, ReplicaHost, StartDriver } from './replica-host.js';

/** Where a replica's output lines go. */
export type ReplicaLineSink = (replica: ReplicaPlan, stream: 'stdout' | 'stderr', line: string) => void;

/** What starting replicas of one run here needs: the hooks, where to report, and the run's objects. */
export interface ReplicaDriver extends StartDriver {
  readonly control: ControlServer;
  readonly pipeline: RunningPipeline;
  readonly onLine?: ReplicaLineSink | undefined;
  /** Heartbeat interval asked of control-protocol replicas (0: none). */
  readonly heartbeatMs?: number;
}

/** Engine args and metadata as they travel in `welcome` (JSON round trip drops undefined). */
function toJsonObject(value: object): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}

/** The worker as spawned: a control-protocol worker gets the socket and its token in its env, announced to the server first. */
function announce(d: ReplicaDriver, replica: ReplicaPlan, phases: boolean): AnnouncedWorker {
  if (replica.worker.attach !== 'control') return { worker: replica.worker, channel: undefined };
  const { stage_id, replica_id } = replica;
  const token = randomBytes(16).toString('hex');
  const env = controlEnv({ socketPath: d.control.socketPath, token, stage_id, replica_id, run_id: d.pipeline.runId });
  const channel = d.control.expect(token, {
    stage_id,
    replica_id,
    engine_args: toJsonObject(replica.engine_args),
    // runtime_cfg stays in the orchestrator: env and devices already reached the child.
    metadata: toJsonObject({ ...replica.metadata, runtime_cfg: null }),
    payloads: d.pipeline.payloads,
    phases,
    ...(d.heartbeatMs ? { heartbeat_ms: d.heartbeatMs } : {}),
  });
  return { worker: { ...replica.worker, env: { ...replica.worker.env, ...env } }, channel };
}

/**
 * This machine as a host: replicas dial the run's control socket (or answer HTTP readiness), start
 * as processes of this host, and join the running pipeline, whose teardown (or the restart
 * supervisor) stops a replica whose start failed.
 */
export function localHost(d: ReplicaDriver): ReplicaHost<StartedReplica> {
  return {
    runId: d.pipeline.runId,
    plan: d.pipeline.plan,
    runDir: d.pipeline.runDir,
    servesInitWindows: true,
    onLine: (replica, stream, line) =>
      d.onLine
        ? d.onLine(replica, stream, line)
        : d.logger.info({ stream, stage: replica.stage_id, replica: replica.replica_id }, line),
    announce: (replica, phased) => announce(d, replica, phased),
    launch: spawnLocal,
    attach: attachLocal,
    spawned: (replica, proc) => d.pipeline.track(replica, proc),
    attached: async (started, connection) => {
      started.connection = connection;
    },
    abandon: async () => {},
  };
}
