import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { ReplicaProcessHandle } from '../hooks/replica-handles.js';
import type { WorkerSpec } from '../planning/types.js';
import { launchInlineThread } from '../launch/inline-thread.js';
import { launchProcess, replicaHandleOf } from '../launch/launch-process.js';
import { ensurePortFree } from '../launch/port-check.js';
import { hostOf } from './builtin-runtime.js';

/** Core's `spawn` tap: the launcher of the host the replica starts on (this machine's, outside the driver). */
export function spawnBuiltin(worker: WorkerSpec, rt: ReplicaRuntime): Promise<ReplicaProcessHandle> {
  return hostOf(rt)?.launch(worker, rt) ?? spawnLocal(worker, rt);
}

/**
 * This machine's launcher: the worker as a process of its own group (or, inline, a thread of the
 * orchestrator). A replica that will serve HTTP on a port is refused first when another program
 * holds that port, so readiness never answers for a stranger.
 */
export async function spawnLocal(worker: WorkerSpec, rt: ReplicaRuntime): Promise<ReplicaProcessHandle> {
  const { stage_id, replica_id } = rt.replica;
  if (worker.attach === 'http' && worker.port !== undefined && !worker.inline)
    await ensurePortFree(worker.port, { stage_id, replica_id, phase: 'spawn' });
  if (worker.inline && worker.inline_module) {
    return launchInlineThread(worker.inline_module, { ...process.env, ...worker.env }, (stream, line) =>
      rt.onLine(stream, line),
    );
  }
  const launched = launchProcess({
    command: worker.command,
    args: worker.args,
    env: { ...process.env, ...worker.env },
    ...(worker.cwd === undefined ? {} : { cwd: worker.cwd }),
    groupShim: worker.group_shim ?? false,
    onLine: (stream, line) => rt.onLine(stream, line),
    errorContext: { stage_id, replica_id, phase: 'spawn' },
  });
  return replicaHandleOf(launched);
}
