import { OmniError } from '../errors.js';
import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { ReplicaConnection, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import { waitForHttpReady } from '../control/http-readiness.js';
import { controlChannelOf, hostOf } from './builtin-runtime.js';
import { ControlReplicaConnection } from './control-connection.js';
import { replicaLabel } from '../error-messages.js';

/** A replica reached over HTTP by whoever asks its readiness URL; core only knows it is up. */
function httpOnlyConnection(readinessUrl: string): ReplicaConnection {
  return {
    info: { readiness_url: readinessUrl },
    request: () => {
      throw new OmniError('OMNI_REQUEST_FAILED', 'this engine is reached over HTTP, not the control protocol');
    },
    shutdown: async () => {},
    close: () => {},
  };
}

/** Core's `attach` tap: the attach of the host the replica starts on (this orchestrator's, outside the driver). */
export function attachBuiltin(proc: ReplicaProcessHandle, rt: ReplicaRuntime): Promise<ReplicaConnection> {
  return hostOf(rt)?.attach(proc, rt) ?? attachLocal(proc, rt);
}

/**
 * This orchestrator's attach. Control-protocol workers: hello → welcome → ready over the channel the
 * driver announced. HTTP workers no engine plugin attached: poll the readiness URL. The driver
 * supervises both (exit, deadline, cancel); this only waits for what it waits for.
 */
export async function attachLocal(_proc: ReplicaProcessHandle, rt: ReplicaRuntime): Promise<ReplicaConnection> {
  const worker = rt.replica.worker;
  const label = replicaLabel(rt.replica);
  if (worker.attach === 'http') {
    rt.progress('ready');
    if (!worker.readiness_url)
      throw new OmniError('OMNI_INTERNAL', `${label}: an http worker has no readiness_url`, {
        hint: 'a bug in the engine plugin',
      });
    await waitForHttpReady(worker.readiness_url, { signal: rt.signal, intervalMs: 250 });
    return httpOnlyConnection(worker.readiness_url);
  }
  const channel = controlChannelOf(rt);
  if (!channel) throw new OmniError('OMNI_INTERNAL', `${label}: control channel missing`);
  rt.progress('hello');
  await channel.hello;
  rt.progress('ready');
  const ready = await channel.ready;
  return new ControlReplicaConnection(channel, (ready.info ?? {}) as Record<string, unknown>);
}
