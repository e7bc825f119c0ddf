import type { Logger } from 'pino';
import type { OmniEvent, OmniEventOf, OmniEventPayload, OmniEventType } from './types.js';

type Listener = (event: OmniEvent) => void;

/**
 * Fan-out of {@link OmniEvent}s. Listeners are isolated: one that throws is logged and the others
 * still run, so an observer plugin can never break a bring-up. Emission is synchronous so that
 * event order is the order things happened in.
 */
export class EventBus {
  readonly #all = new Set<Listener>();
  readonly #byType = new Map<OmniEventType, Set<Listener>>();
  readonly #logger: Logger;
  #runId = '';

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** The run id stamped on every event; set when a run starts. */
  setRunId(runId: string): void {
    this.#runId = runId;
  }

  get runId(): string {
    return this.#runId;
  }

  on<T extends OmniEventType>(type: T, listener: (event: OmniEventOf<T>) => void): () => void {
    let set = this.#byType.get(type);
    if (!set) this.#byType.set(type, (set = new Set()));
    set.add(listener as Listener);
    return () => set.delete(listener as Listener);
  }

  onAny(listener: (event: OmniEvent) => void): () => void {
    this.#all.add(listener);
    return () => this.#all.delete(listener);
  }

  emit(payload: OmniEventPayload): void {
    const event = { ...payload, ts: Date.now(), run_id: this.#runId } as OmniEvent;
    for (const l of this.#byType.get(event.type) ?? []) this.#deliver(l, event);
    for (const l of this.#all) this.#deliver(l, event);
  }

  #deliver(listener: Listener, event: OmniEvent): void {
    try {
      listener(event);
    } catch (err) {
      this.#logger.warn(
        { code: 'OMNI_WARN_LISTENER_FAILED', err, event: event.type },
        'an event listener threw; the event was still delivered to the others',
      );
    }
  }
}
