import { OmniError, type ErrorContext } from '../errors.js';
import { cancelled } from '../error-messages.js';

/** How {@link waitForHttpReady} polls: interval, per-request timeout, deadline, signal. */
export interface HttpReadinessOptions {
  /** Aborting stops the wait with OMNI_CANCELLED (e.g. the replica process exited, or the launch was cancelled). */
  signal?: AbortSignal;
  /** Pause between polls (default 500 ms). */
  intervalMs?: number;
  /** Epoch ms after which the wait fails with OMNI_ATTACH_TIMEOUT (default: none). */
  deadline?: number;
  /** Cap on one GET (default 5000 ms) so a server that accepts but never answers cannot stall us. */
  requestTimeoutMs?: number;
  /** Stage/replica context for errors. */
  errorContext?: ErrorContext;
}

/**
 * Attach for engines that only serve HTTP (e.g. `vllm serve`): polls `GET url` until it answers
 * 200. Poll a model-level endpoint such as `/v1/models`, which only answers once weights are
 * loaded (a bare `/health` may answer earlier). Connection refused, other statuses and per-request
 * timeouts just mean "not yet".
 */
export async function waitForHttpReady(url: string, opts: HttpReadinessOptions = {}): Promise<void> {
  const interval = opts.intervalMs ?? 500;
  const deadline = opts.deadline ?? Number.POSITIVE_INFINITY;
  const context = { ...opts.errorContext, phase: 'attach' };
  let last = 'no answer yet';
  for (;;) {
    if (opts.signal?.aborted === true) {
      throw cancelled(`waiting for ${url}`, {
        cause: opts.signal.reason,
        context,
        hint: 'the launch was cancelled or the replica exited before it served HTTP',
      });
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new OmniError('OMNI_ATTACH_TIMEOUT', `${url} did not answer 200 in time (last: ${last})`, {
        context,
        hint: 'the engine is still loading or failed to bind its port; see its last log lines, or raise stage_init_timeout',
      });
    }
    const requestTimeout = opts.requestTimeoutMs ?? 5_000;
    const perRequest = AbortSignal.timeout(Math.min(requestTimeout, remaining));
    const signal = opts.signal === undefined ? perRequest : AbortSignal.any([opts.signal, perRequest]);
    try {
      const res = await fetch(url, { method: 'GET', signal, headers: { accept: 'application/json' } });
      // Only the status matters: the body is discarded unread, so an engine answering an endless
      // body cannot grow the orchestrator.
      await res.body?.cancel().catch(() => undefined);
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      // A request cut short by the overall deadline says nothing new: keep the previous answer.
      const cutByDeadline = perRequest.aborted && requestTimeout > remaining;
      if (!cutByDeadline || last === 'no answer yet') last = describeFetchError(err, requestTimeout);
    }
    await pause(Math.min(interval, Math.max(0, deadline - Date.now())), opts.signal);
  }
}

function describeFetchError(err: unknown, requestTimeoutMs: number): string {
  if ((err as { name?: unknown } | null)?.name === 'TimeoutError') return `no answer within ${requestTimeoutMs} ms`;
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  return err instanceof Error ? err.message : String(err);
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
