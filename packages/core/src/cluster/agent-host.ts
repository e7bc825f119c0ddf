import { OmniError } from '../errors.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { OutputStream } from '../launch/launch-process.js';
import { attachLocal } from '../builtins/attach.js';
import type { ReplicaHost } from '../pipeline/replica-host.js';
import type { Launcher } from './launcher.js';

/** One start of one replica on an agent: how its incarnation reaches the head, and how the agent learns it is in. */
export interface AgentStart {
  runId: string;
  /** The head's control endpoint (`tcp://HOST:PORT`). */
  head: string;
  /** What makes this incarnation dial the head: its control endpoint, the incarnation's token, TLS paths, the host address. */
  env: Readonly<Record<string, string>>;
  launcher: Launcher;
  /** Grace between SIGTERM and SIGKILL when a failed start stops its process (the run's stop grace, as locally). */
  stopGraceMs: number;
  /** Resolves once the head took this incarnation into its pool (its attached mark in discovery). */
  attached(signal: AbortSignal): Promise<unknown>;
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
 * once the head marks them attached (the head saw their `ready`); locks are this host's, and a
 * replica loads alone (init windows would need the head's channel). A failed start stops its
 * process here: no pipeline of this host would.
 */
export function agentHost(s: AgentStart): ReplicaHost<ReplicaProcessHandle> {
  return {
    runId: s.runId,
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
    attached: async (_proc, _connection, rt) => {
      rt.progress('ready', 'the head has not taken it into its pool yet');
      await s.attached(rt.signal);
    },
    abandon: async (proc) => {
      await proc.stop(s.stopGraceMs);
    },
  };
}
