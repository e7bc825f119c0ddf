import { OmniError } from '../errors.js';
import type { ReplicaConnection, ReplicaOutputChunk, ReplicaRequest } from '../hooks/replica-handles.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import type { JsonObject, JsonValue, WorkerMessage } from '../control/protocol.js';
import { replicaLabel, requestAborted } from '../error-messages.js';

interface Pending {
  push(chunk: ReplicaOutputChunk): void;
  fail(err: OmniError): void;
}

/**
 * A {@link ReplicaConnection} over the control protocol: requests go out as `request` messages and
 * their `output` chunks are routed back by `request_id`. If the channel closes, every in-flight
 * request fails with an error naming the replica (the router decides to retry or report).
 */
export class ControlReplicaConnection implements ReplicaConnection {
  readonly info: Record<string, unknown>;
  readonly #channel: ReplicaChannel;
  readonly #pending = new Map<string, Pending>();

  constructor(channel: ReplicaChannel, info: Record<string, unknown>) {
    this.#channel = channel;
    this.info = info;
    channel.onMessage((m) => this.#onMessage(m));
    void channel.closed.then(({ error }) => {
      const err =
        error ??
        new OmniError('OMNI_WORKER_EXITED', `${replicaLabel(channel)} closed its control connection`, {
          context: { stage_id: channel.stage_id, replica_id: channel.replica_id, phase: 'running' },
          hint: 'the replica exited or crashed while serving',
        });
      for (const p of this.#pending.values()) p.fail(err);
      this.#pending.clear();
    });
  }

  #onMessage(m: WorkerMessage): void {
    if (m.type === 'output') {
      const p = this.#pending.get(m.request_id);
      p?.push({ request_id: m.request_id, seq: m.seq, data: m.data, done: m.done });
      if (m.done) this.#pending.delete(m.request_id);
    } else if (m.type === 'request_error') {
      const p = this.#pending.get(m.request_id);
      this.#pending.delete(m.request_id);
      p?.fail(
        new OmniError(
          'OMNI_REQUEST_FAILED',
          `${replicaLabel(this.#channel)} failed request ${m.request_id}: ${m.message}`,
          {
            context: {
              stage_id: this.#channel.stage_id,
              replica_id: this.#channel.replica_id,
              request_id: m.request_id,
            },
            hint: 'the engine rejected or failed this request; see its log lines',
          },
        ),
      );
    }
  }

  async *request(req: ReplicaRequest, signal?: AbortSignal): AsyncIterable<ReplicaOutputChunk> {
    const queue: ReplicaOutputChunk[] = [];
    let error: OmniError | null = null;
    let wake: (() => void) | null = null;
    const notify = (): void => {
      wake?.();
      wake = null;
    };
    this.#pending.set(req.request_id, {
      push: (c) => {
        queue.push(c);
        notify();
      },
      fail: (e) => {
        error = e;
        notify();
      },
    });
    const onAbort = (): void => {
      this.#channel.send({ type: 'abort', request_id: req.request_id });
      this.#pending.get(req.request_id)?.fail(requestAborted(req.request_id));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const sent = this.#channel.send({
        type: 'request',
        request_id: req.request_id,
        input: req.input as JsonValue,
        params: req.params as JsonObject,
      });
      if (!sent) {
        throw new OmniError('OMNI_WORKER_EXITED', `${replicaLabel(this.#channel)} is not connected`, {
          context: { stage_id: this.#channel.stage_id, replica_id: this.#channel.replica_id, phase: 'running' },
        });
      }
      for (;;) {
        const next = queue.shift();
        if (next) {
          yield next;
          if (next.done) return;
          continue;
        }
        if (error) throw error;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#pending.delete(req.request_id);
    }
  }

  lastHeartbeat(): number | null {
    return this.#channel.lastHeartbeat;
  }

  async shutdown(): Promise<void> {
    this.#channel.send({ type: 'shutdown', reason: 'pipeline stopping' });
  }

  close(): void {
    this.#channel.close();
  }
}
