import type { Logger } from 'pino';
import { noteStopSignal } from './stop-signal.js';
import { watchParent } from './parent-watch.js';

/** The signals that stop a long-running command (SIGHUP: the terminal it ran in was closed). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Why a long-running command was asked to stop: a signal, or its parent (supervisor, npx) died. */
export interface StopRequest {
  signal: NodeJS.Signals;
  /** What happened, to start a log line: "received SIGTERM" or "the parent process exited". */
  heard: string;
  /** What stopped it, after "interrupted by": "SIGTERM" or "the exit of its parent process". */
  by: string;
  /** The teardown reason events carry: "signal SIGTERM" or "parent process exited". */
  reason: string;
}

/**
 * The run-until-stopped lifecycle shared by `up`, `serve`, `run` and `agent`: the first SIGINT,
 * SIGTERM or SIGHUP, or the death of the CLI's parent, is one stop request. It aborts `signal` (a
 * bring-up under way is cancelled) and calls the command's `onStop` once; later requests are
 * ignored, because a second Ctrl-C must not skip teardown — GPU-holding orphans are what users
 * complain about most. The exit status is 128 + the signal (stop-signal.ts); a parent's death
 * counts as SIGHUP, the signal for "the controlling side went away".
 */
export class StopLifecycle {
  readonly #cancel = new AbortController();
  readonly #stopped: Promise<StopRequest>;
  #request: StopRequest | null = null;
  #offSignals: () => void = () => {};
  #offParent: () => void = () => {};

  constructor(logger: Logger, onStop: (request: StopRequest) => void) {
    let wake: (request: StopRequest) => void = () => {};
    this.#stopped = new Promise((resolve) => (wake = resolve));
    const stop = (request: StopRequest): void => {
      if (this.#request) return;
      this.#request = request;
      noteStopSignal(request.signal);
      onStop(request);
      this.#cancel.abort();
      wake(request);
    };
    const onSignal = (signal: NodeJS.Signals): void =>
      stop({ signal, heard: `received ${signal}`, by: signal, reason: `signal ${signal}` });
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
    this.#offSignals = () => {
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
    };
    this.#offParent = watchParent(() => {
      logger.warn(
        { code: 'OMNI_WARN_PARENT_EXITED' },
        'the process that started omnistage (a supervisor, npx) is gone: stopping as on SIGHUP',
      );
      stop({
        signal: 'SIGHUP',
        heard: 'the parent process exited',
        by: 'the exit of its parent process',
        reason: 'parent process exited',
      });
    });
  }

  /** Aborted by the first stop request: pass it to a bring-up so a stop cancels it. */
  get signal(): AbortSignal {
    return this.#cancel.signal;
  }

  /** The stop request, once there was one. */
  get request(): StopRequest | null {
    return this.#request;
  }

  /**
   * Waits until a stop request or until `failed` rejects (a stage lost its last replica, the
   * head was lost); resolves with that failure, or null when it was a stop request.
   */
  async untilStopped(failed?: Promise<never>): Promise<unknown> {
    let failure: unknown = null;
    await Promise.race([this.#stopped, ...(failed ? [failed.catch((err: unknown) => (failure = err))] : [])]);
    return failure;
  }

  /** Stops listening for signals and for the parent (call in `finally`). */
  close(): void {
    this.#offSignals();
    this.#offParent();
  }
}
