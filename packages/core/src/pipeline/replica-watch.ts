import { OmniError, toOmniError } from '../errors.js';
import { BUILTIN_TAP_PREFIX } from '../hooks/plugin-errors.js';
import type { ReplicaPlan } from '../planning/types.js';
import { describeProgress, whereIs, type ReplicaProgress } from './replica-progress.js';
import { replicaLabel } from '../error-messages.js';

/** The deadlines one replica start is bound by. */
export interface ReplicaDeadlines {
  /** Epoch ms by which lock + spawn + attach must be done. */
  deadline: number;
  /** The pipeline's init deadline, when this start is part of a bring-up (not a restart). */
  pipelineDeadline?: number;
  /** `init_timeout` in seconds, for messages. */
  initTimeoutS?: number;
}

/**
 * One replica's deadline and cancellation: `signal` aborts with an error naming the replica and
 * where it was, when its deadline passes, when the outer signal aborts (another replica failed,
 * Ctrl-C, teardown) or when `fail` is called.
 */
export class ReplicaWatch {
  readonly progress: ReplicaProgress;
  readonly #abort = new AbortController();
  readonly #outer: AbortSignal;
  readonly #timer: NodeJS.Timeout;
  readonly #d: ReplicaDeadlines;
  readonly #onOuterAbort = (): void => this.#cancelled();

  constructor(replica: ReplicaPlan, outer: AbortSignal, deadlines: ReplicaDeadlines) {
    this.progress = { replica, phase: 'lock', tap: null, step: null, detail: null };
    this.#outer = outer;
    this.#d = deadlines;
    this.#timer = setTimeout(() => this.#expired(), Math.max(0, deadlines.deadline - Date.now()));
    if (outer.aborted) this.#cancelled();
    outer.addEventListener('abort', this.#onOuterAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** When the pipeline's init_timeout is the nearer deadline, expiring it is the pipeline's timeout. */
  get pipelineBound(): boolean {
    return this.#d.pipelineDeadline !== undefined && this.#d.deadline >= this.#d.pipelineDeadline;
  }

  get expired(): boolean {
    return Date.now() >= this.#d.deadline;
  }

  fail(err: Error): void {
    if (!this.#abort.signal.aborted) this.#abort.abort(err);
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#outer.removeEventListener('abort', this.#onOuterAbort);
  }

  #expired(): void {
    // Core's lock wait honours the deadline itself and names the device and its holder.
    if (this.progress.phase === 'lock' && this.progress.tap?.startsWith(BUILTIN_TAP_PREFIX)) return;
    this.fail(this.timeoutError());
  }

  #cancelled(): void {
    const reason = toOmniError(this.#outer.reason, 'OMNI_CANCELLED');
    const p = this.progress;
    this.fail(
      new OmniError(
        'OMNI_CANCELLED',
        `${replicaLabel(p.replica)} was cancelled while ${describeProgress(p)}: ${reason.message}`,
        {
          cause: reason,
          context: { stage_id: p.replica.stage_id, replica_id: p.replica.replica_id, phase: whereIs(p) },
          hint: 'another replica failed, a deadline passed or the pipeline was stopped; see the first error',
        },
      ),
    );
  }

  /** The error of this replica's deadline, naming the phase (or step) it was in. */
  timeoutError(): OmniError {
    const p = this.progress;
    const { stage_id, replica_id } = p.replica;
    const context = { stage_id, replica_id, phase: whereIs(p) };
    if (this.pipelineBound) {
      return new OmniError(
        'OMNI_INIT_TIMEOUT',
        `the pipeline did not come up within ${this.#d.initTimeoutS ?? '?'}s (init_timeout): ${replicaLabel(p.replica)} was still ${describeProgress(p)}`,
        {
          context,
          hint: 'raise --init-timeout (the whole bring-up) or find out why this replica is slow from its last lines',
        },
      );
    }
    const attaching = p.phase === 'attach';
    const what = attaching
      ? `attaching (${p.detail ?? (p.step ? `no ${p.step} message` : `in the attach tap of "${p.tap ?? '?'}"`)})`
      : p.phase;
    return new OmniError(
      attaching ? 'OMNI_ATTACH_TIMEOUT' : 'OMNI_INIT_TIMEOUT',
      `${replicaLabel(p.replica)} did not finish ${what} within stage_init_timeout`,
      {
        context,
        hint: 'the engine may be slow to load (raise --stage-init-timeout) or stuck; see its last output lines',
      },
    );
  }

  /** A lock wait that ran into the pipeline's deadline (not the replica's own) is the pipeline's timeout. */
  asPipelineTimeout(e: OmniError): OmniError {
    if (e.code !== 'OMNI_LOCK_TIMEOUT' || !this.pipelineBound || !this.expired) return e;
    return new OmniError(
      'OMNI_INIT_TIMEOUT',
      `the pipeline did not come up within ${this.#d.initTimeoutS ?? '?'}s (init_timeout): ${e.message}`,
      {
        cause: e,
        context: { ...e.context },
        hint: 'raise --init-timeout, or stop whoever holds the device',
      },
    );
  }
}
