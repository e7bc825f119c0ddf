import { OmniError } from '../errors.js';
import type { ReplicaConnection, ReplicaOutputChunk, ReplicaRequest } from '../hooks/replica-handles.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import type { JsonObject, JsonValue, WorkerMessage } from '../control/protocol.js';
import { replicaLabel, requestAborted } from '../error-messages.js';
import { STREAM_WINDOW } from '../control/stream-window.js';

interface Pending {
  push(chunk: ReplicaOutputChunk): void;
  fail(err: OmniError): void;
  /** The replica's handler took its streamed input up to `seq`. */
  acked(seq: number): void;
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
    } else if (m.type === 'input_ack') {
      this.#pending.get(m.request_id)?.acked(m.seq);
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
    const input = req.inputStream === undefined ? null : new InputPump(this.#channel, req.request_id);
    this.#pending.set(req.request_id, {
      push: (c) => {
        queue.push(c);
        notify();
      },
      fail: (e) => {
        error = e;
        input?.stop();
        notify();
      },
      acked: (seq) => input?.acked(seq),
    });
    const onAbort = (): void => {
      this.#channel.send({ type: 'abort', request_id: req.request_id });
      this.#pending.get(req.request_id)?.fail(requestAborted(req.request_id));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const credits =
      req.outputWindow === undefined ? null : new CreditReturn(this.#channel, req.request_id, req.outputWindow);
    try {
      const sent = this.#channel.send({
        type: 'request',
        request_id: req.request_id,
        input: req.input as JsonValue,
        params: req.params as JsonObject,
        ...(input === null ? {} : { streamed: true, input_window: STREAM_WINDOW }),
        ...(req.outputWindow === undefined ? {} : { output_window: req.outputWindow }),
      });
      if (!sent) {
        throw new OmniError('OMNI_WORKER_EXITED', `${replicaLabel(this.#channel)} is not connected`, {
          context: { stage_id: this.#channel.stage_id, replica_id: this.#channel.replica_id, phase: 'running' },
        });
      }
      if (input !== null) void input.run(req.inputStream!);
      for (;;) {
        const next = queue.shift();
        if (next) {
          yield next;
          if (next.done) return;
          credits?.taken();
          continue;
        }
        if (error) throw error;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      input?.stop();
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

/**
 * Sends a streamed input to a replica as it comes, never more than {@link STREAM_WINDOW} chunks
 * ahead of what its handler took (`input_ack`), then `input_end`. Stopped by the request's end,
 * failure or abort; a source that fails stops it too (the router fails the request for that).
 */
class InputPump {
  readonly #channel: ReplicaChannel;
  readonly #requestId: string;
  #seq = 0;
  #acked = -1;
  #stopped = false;
  #room: (() => void) | null = null;

  constructor(channel: ReplicaChannel, requestId: string) {
    this.#channel = channel;
    this.#requestId = requestId;
  }

  async run(chunks: AsyncIterable<unknown>): Promise<void> {
    const iterator = chunks[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await iterator.next();
        if (this.#stopped) return;
        if (next.done === true) break;
        while (this.#seq + 1 - this.#acked > STREAM_WINDOW && !this.#stopped) {
          await new Promise<void>((resolve) => (this.#room = resolve));
        }
        if (this.#stopped) return;
        this.#channel.send({
          type: 'input',
          request_id: this.#requestId,
          seq: ++this.#seq,
          data: next.value as JsonValue,
        });
      }
      this.#channel.send({ type: 'input_end', request_id: this.#requestId });
    } catch {
      // The source failed: the router fails (and aborts) the whole request.
    } finally {
      if (this.#stopped) void iterator.return?.();
    }
  }

  acked(seq: number): void {
    if (seq > this.#acked) this.#acked = seq;
    this.#wake();
  }

  stop(): void {
    this.#stopped = true;
    this.#wake();
  }

  #wake(): void {
    const room = this.#room;
    this.#room = null;
    room?.();
  }
}

/** Gives a replica back the output credits of the chunks its reader took, a quarter window at a time. */
class CreditReturn {
  readonly #channel: ReplicaChannel;
  readonly #requestId: string;
  readonly #batch: number;
  #owed = 0;

  constructor(channel: ReplicaChannel, requestId: string, window: number) {
    this.#channel = channel;
    this.#requestId = requestId;
    this.#batch = Math.max(1, Math.floor(window / 4));
  }

  taken(): void {
    if (++this.#owed < this.#batch) return;
    this.#channel.send({ type: 'credit', request_id: this.#requestId, n: this.#owed });
    this.#owed = 0;
  }
}
