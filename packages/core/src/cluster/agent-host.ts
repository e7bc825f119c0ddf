import { OmniError } from '../errors.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { OutputStream } from '../launch/launch-process.js';
import { attachLocal } from '../builtins/attach.js';
import { replicaLabel } from '../error-messages.js';
import type { ReplicaHost } from '../pipeline/replica-host.js';
import type { Launcher } from './launcher.js';
import type { InitPlan } from '../planning/types.js';

/** One start of one replica on an agent: how its incarnation reaches the head, and how the agent learns it is in. */
export interface AgentStart {
  runId: string;
  /** This agent's plan of the pipeline. */
  plan: InitPlan;
  /** The head's control endpoint (`tcp://HOST:PORT`). */
  head: string;
  /** What makes this incarnation dial the head: its control endpoint, the incarnation's token, TLS paths, the host address. */
  env: Readonly<Record<string, string>>;
  launcher: Launcher;
  /** Grace between SIGTERM and SIGKILL when a failed start stops its process (the run's stop grace, as locally). */
  stopGraceMs: number;
  /** Resolves once the head took this incarnation into its pool (its attached mark in discovery). */
  attached(signal: AbortSignal): Promise<unknown>;
  /** Tells the head an HTTP engine is ready at `readinessUrl` (it dials nobody: the head attaches to it there). */
  advertiseHttp(readinessUrl: string, pid: number): Promise<void>;
  /** Told the process once started, whoever's spawn tap started it. */
  onSpawned(process: ReplicaProcessHandle): void;
  onLine(stream: OutputStream, line: string): void;
}

/** A control-protocol replica on an agent talks to the head, never to its agent: what the agent's attach holds. */
function headSide(head: string): ReplicaConnection {
  return {
    info: { attached_to: head },
    request: () => {
      throw new OmniError('OMNI_REQUEST_FAILED', `this replica serves requests from its head (${head}), not its agent`);
    },
    shutdown: async () => {},
    close: () => {},
  };
}

/**
 * An agent's host strategy for the one start sequence: replicas dial the head (the env carries its
 * TCP endpoint and the incarnation's token), start through the agent's {@link Launcher}, and are in
 * once the head marks them attached (the head saw their `ready`). An HTTP engine (`vllm serve`,
 * bound on the agent's `--advertise` address) dials nobody: once an `attach` tap found it ready
 * here, its readiness URL is advertised and the head attaches to it there. Locks are this host's,
 * and a replica loads alone (init windows would need the head's channel). A failed start stops its
 * process here: no pipeline of this host would.
 */
export function agentHost(s: AgentStart): ReplicaHost<ReplicaProcessHandle> {
  return {
    runId: s.runId,
    plan: s.plan,
    runDir: '',
    servesInitWindows: false,
    onLine: (_replica, stream, line) => s.onLine(stream, line),
    announce: (replica) => ({
      worker: { ...replica.worker, env: { ...replica.worker.env, ...s.env } },
      channel: undefined,
    }),
    launch: async (worker, rt) =>
      s.launcher.launch({
        stage_id: rt.replica.stage_id,
        replica_id: rt.replica.replica_id,
        worker,
        env: s.env,
        onLine: (stream, line) => rt.onLine(stream, line),
      }),
    attach: async (proc, rt) => (rt.replica.worker.attach === 'http' ? attachLocal(proc, rt) : headSide(s.head)),
    spawned: (_replica, proc) => {
      s.onSpawned(proc);
      return proc;
    },
    attached: async (proc, _connection, rt) => {
      const { worker } = rt.replica;
      if (worker.attach === 'http') {
        if (worker.readiness_url === undefined)
          throw new OmniError('OMNI_INTERNAL', `${replicaLabel(rt.replica)}: an http worker has no readiness_url`, {
            hint: 'a bug in the engine plugin that resolved this worker',
          });
        await s.advertiseHttp(worker.readiness_url, proc.pid);
      }
      rt.progress('ready', 'the head has not taken it into its pool yet');
      await s.attached(rt.signal);
    },
    abandon: async (proc) => {
      await proc.stop(s.stopGraceMs);
    },
  };
}
