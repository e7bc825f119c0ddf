import { OmniError, isOmniError, toOmniError, waitForHttpReady } from '@omnistage/core';
import type { ReplicaConnection, ReplicaExit, ReplicaProcessHandle, ReplicaRuntime } from '@omnistage/core';
import { OpenAiCompletionsConnection } from './openai-completions-connection.js';

/** Options of {@link attachVllmServe} (tests shorten the poll). */
export interface AttachVllmServeOptions {
  /** Pause between readiness polls (default 250 ms). */
  intervalMs?: number;
  /** Cap on one readiness GET (default 5000 ms). */
  requestTimeoutMs?: number;
}

function describeExit(exit: ReplicaExit): string {
  return exit.signal ? `killed by signal ${exit.signal}` : `exit code ${exit.code}`;
}

/** Model ids of a `GET /v1/models` answer (`{object: 'list', data: [{id}]}`); [] for anything else. */
export function modelIdsOf(answer: unknown): string[] {
  const data = (answer as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return [];
  return data.map((m) => (m as { id?: unknown } | null)?.id).filter((id): id is string => typeof id === 'string' && id !== '');
}

/** The name vLLM serves a replica under, from its engine args: `served_model_name` (first), else the model. */
function servedNameFromArgs(args: Record<string, unknown>): string | undefined {
  const served = args['served_model_name'];
  if (typeof served === 'string' && served !== '') return served;
  if (Array.isArray(served) && typeof served[0] === 'string') return served[0];
  return typeof args['model'] === 'string' && args['model'] !== '' ? args['model'] : undefined;
}

/**
 * Attaches a `vllm serve` replica: polls its readiness URL (`GET /v1/models`, which answers only
 * once the weights are loaded) until 200, within `runtime.deadline` and `runtime.signal`, failing
 * fast with OMNI_WORKER_EXITED (phase `ready`, exit code or signal, last lines) if the process exits
 * meanwhile; then reads the served model ids and returns an {@link OpenAiCompletionsConnection}.
 */
export async function attachVllmServe(
  proc: ReplicaProcessHandle,
  rt: ReplicaRuntime,
  options: AttachVllmServeOptions = {},
): Promise<ReplicaConnection> {
  const { replica } = rt;
  const { stage_id, replica_id } = replica;
  const label = `stage ${stage_id} replica ${replica_id}`;
  const worker = replica.worker;
  const readinessUrl = worker.readiness_url ?? (worker.port === undefined ? undefined : `http://127.0.0.1:${worker.port}/v1/models`);
  if (readinessUrl === undefined) {
    throw new OmniError('OMNI_INTERNAL', `${label}: a vllm worker has neither readiness_url nor port`, {
      context: { stage_id, replica_id, phase: 'ready' },
      hint: 'a bug in the engine plugin that resolved this worker',
    });
  }
  const baseUrl = new URL(readinessUrl).origin;
  const modelsUrl = `${baseUrl}/v1/models`;

  // One signal for everything this attach waits on: the launch's signal, and the process exiting.
  const wait = new AbortController();
  const onOuterAbort = (): void => wait.abort(rt.signal.reason);
  if (rt.signal.aborted) onOuterAbort();
  rt.signal.addEventListener('abort', onOuterAbort, { once: true });
  let exitError: OmniError | undefined;
  const exited = proc.exited.then((exit) => {
    exitError = new OmniError('OMNI_WORKER_EXITED', `${label} (pid ${proc.pid}) exited during ready (${describeExit(exit)}) before ${readinessUrl} answered`, {
      context: {
        stage_id,
        replica_id,
        phase: 'ready',
        pid: proc.pid,
        exit_code: exit.code,
        signal: exit.signal,
        last_lines: proc.lastLines().slice(-10),
      },
      hint: 'vllm serve failed while starting (bad flag, out of memory, model not found...); its last output lines are shown above',
    });
    wait.abort(exitError);
    throw exitError;
  });

  const ready = async (): Promise<string[]> => {
    await waitForHttpReady(readinessUrl, {
      signal: wait.signal,
      deadline: rt.deadline,
      intervalMs: options.intervalMs ?? 250,
      requestTimeoutMs: options.requestTimeoutMs ?? 5_000,
      errorContext: { stage_id, replica_id },
    });
    try {
      const res = await fetch(modelsUrl, { signal: AbortSignal.any([wait.signal, AbortSignal.timeout(options.requestTimeoutMs ?? 5_000)]) });
      return res.ok ? modelIdsOf(await res.json()) : [];
    } catch (err) {
      if (wait.signal.aborted) throw err;
      return []; // readiness said 200; fall back on the engine args for the model name
    }
  };

  try {
    const ids = await Promise.race([ready(), exited]);
    const model = ids[0] ?? servedNameFromArgs(replica.engine_args);
    if (model === undefined) {
      throw new OmniError('OMNI_PROTOCOL', `${label}: ${modelsUrl} lists no model, and the engine args name none`, {
        context: { stage_id, replica_id, phase: 'ready', pid: proc.pid },
        hint: 'the server on this port does not look like vllm serve',
      });
    }
    const defaults = replica.metadata.default_sampling_params;
    return new OpenAiCompletionsConnection({
      baseUrl,
      model,
      modelIds: ids,
      stageId: stage_id,
      replicaId: replica_id,
      defaultSamplingParams: defaults,
      info: { pid: proc.pid, readiness_url: readinessUrl },
    });
  } catch (err) {
    // The process exiting explains whatever else failed (a cancelled poll, a refused connection).
    if (exitError !== undefined) throw exitError;
    if (rt.signal.aborted) {
      // Core aborts with its own timeout error when this replica's deadline passes; name what was awaited.
      const reason: unknown = rt.signal.reason;
      const ownTimeout =
        isOmniError(reason) &&
        (reason.code === 'OMNI_INIT_TIMEOUT' || reason.code === 'OMNI_ATTACH_TIMEOUT') &&
        reason.context.stage_id === stage_id &&
        reason.context.replica_id === replica_id;
      if (ownTimeout || Date.now() >= rt.deadline) {
        throw new OmniError('OMNI_ATTACH_TIMEOUT', `${label} (pid ${proc.pid}): ${readinessUrl} did not answer 200 within stage_init_timeout`, {
          cause: reason,
          context: { stage_id, replica_id, phase: 'ready', pid: proc.pid, last_lines: proc.lastLines().slice(-10) },
          hint: 'vllm serve is still loading the model or failed to bind its port; see its last lines, or raise --stage-init-timeout',
        });
      }
      throw toOmniError(reason, 'OMNI_CANCELLED');
    }
    if (isOmniError(err)) {
      err.context.phase = 'ready';
      throw err;
    }
    throw toOmniError(err, 'OMNI_INTERNAL', { stage_id, replica_id, phase: 'ready' });
  } finally {
    rt.signal.removeEventListener('abort', onOuterAbort);
    // Stops a poll still running (the exit won the race) and observes the exit rejection.
    if (!wait.signal.aborted) wait.abort(new OmniError('OMNI_CANCELLED', 'attach finished'));
    exited.catch(() => undefined);
  }
}
