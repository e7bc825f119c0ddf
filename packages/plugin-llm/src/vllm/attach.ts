import { OmniError, waitForHttpReady } from '@omnistage/core';
import type { ReplicaConnection, ReplicaProcessHandle, ReplicaRuntime } from '@omnistage/core';
import { OpenAiCompletionsConnection } from './openai-completions-connection.js';
import { disaggregatedSideOf } from './disaggregated.js';
import { replicaLabel } from '@omnistage/core/runtime';

/** Options of {@link attachVllmServe} (tests shorten the poll). */
export interface AttachVllmServeOptions {
  /** Pause between readiness polls (default 250 ms). */
  intervalMs?: number;
  /** Cap on one readiness GET (default 5000 ms). */
  requestTimeoutMs?: number;
}

/** Model ids of a `GET /v1/models` answer (`{object: 'list', data: [{id}]}`); [] for anything else. */
export function modelIdsOf(answer: unknown): string[] {
  const data = (answer as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return [];
  return data
    .map((m) => (m as { id?: unknown } | null)?.id)
    .filter((id): id is string => typeof id === 'string' && id !== '');
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
 * once the weights are loaded) until 200, then reads the served model ids and returns an
 * {@link OpenAiCompletionsConnection}. Core supervises this attach like its own: the process
 * exiting, the replica's deadline and a cancel end it at once (and abort `rt.signal`, which stops
 * the poll), naming what it waited for.
 */
export async function attachVllmServe(
  proc: ReplicaProcessHandle,
  rt: ReplicaRuntime,
  options: AttachVllmServeOptions = {},
): Promise<ReplicaConnection> {
  const { replica } = rt;
  const { stage_id, replica_id } = replica;
  const worker = replica.worker;
  const readinessUrl =
    worker.readiness_url ?? (worker.port === undefined ? undefined : `http://127.0.0.1:${worker.port}/v1/models`);
  if (readinessUrl === undefined) {
    throw new OmniError('OMNI_INTERNAL', `${replicaLabel(replica)}: a vllm worker has neither readiness_url nor port`, {
      context: { stage_id, replica_id, phase: 'ready' },
      hint: 'a bug in the engine plugin that resolved this worker',
    });
  }
  const baseUrl = new URL(readinessUrl).origin;
  const modelsUrl = `${baseUrl}/v1/models`;
  const requestTimeoutMs = options.requestTimeoutMs ?? 5_000;
  rt.progress('ready', `${readinessUrl} did not answer 200 yet`);
  await waitForHttpReady(readinessUrl, {
    signal: rt.signal,
    intervalMs: options.intervalMs ?? 250,
    requestTimeoutMs,
    errorContext: { stage_id, replica_id },
  });
  let ids: string[] = [];
  try {
    const res = await fetch(modelsUrl, { signal: AbortSignal.any([rt.signal, AbortSignal.timeout(requestTimeoutMs)]) });
    ids = res.ok ? modelIdsOf(await res.json()) : [];
  } catch (err) {
    if (rt.signal.aborted) throw err;
    // readiness said 200; fall back on the engine args for the model name
  }
  const model = ids[0] ?? servedNameFromArgs(replica.engine_args);
  if (model === undefined) {
    throw new OmniError(
      'OMNI_PROTOCOL',
      `${replicaLabel(replica)}: ${modelsUrl} lists no model, and the engine args name none`,
      {
        context: { stage_id, replica_id, phase: 'ready', pid: proc.pid },
        hint: 'the server on this port does not look like vllm serve',
      },
    );
  }
  return new OpenAiCompletionsConnection({
    baseUrl,
    model,
    modelIds: ids,
    stageId: stage_id,
    replicaId: replica_id,
    defaultSamplingParams: replica.metadata.default_sampling_params,
    disaggregated: disaggregatedSideOf(replica.engine_args),
    info: { pid: proc.pid, readiness_url: readinessUrl },
  });
}
