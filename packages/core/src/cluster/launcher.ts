import type { ReplicaProcessHandle } from '../hooks/replica-handles.js';
import { launchProcess, replicaHandleOf, type OutputStream } from '../launch/launch-process.js';
import type { WorkerSpec } from '../planning/types.js';

/** One replica process an agent starts: the planned worker plus the env that makes it dial the head. */
export interface LaunchRequest {
  stage_id: number;
  replica_id: number;
  worker: WorkerSpec;
  env: Readonly<Record<string, string>>;
  onLine(stream: OutputStream, line: string): void;
}

/**
 * How an agent starts replicas. {@link LocalProcessLauncher} runs them as processes of this host
 * (core's launcher: own process group, parent-death signal); a Kubernetes backend would create pods.
 */
export interface Launcher {
  launch(request: LaunchRequest): ReplicaProcessHandle;
}

/** Starts replicas as local processes, as `up` does. */
export class LocalProcessLauncher implements Launcher {
  launch(request: LaunchRequest): ReplicaProcessHandle {
    const { worker } = request;
    const launched = launchProcess({
      command: worker.command,
      args: worker.args,
      env: { ...process.env, ...worker.env, ...request.env },
      ...(worker.cwd === undefined ? {} : { cwd: worker.cwd }),
      groupShim: worker.group_shim ?? false,
      onLine: request.onLine,
      errorContext: { stage_id: request.stage_id, replica_id: request.replica_id, phase: 'spawn' },
    });
    return replicaHandleOf(launched);
  }
}
