import type { StagePlan } from '../planning/types.js';
import { findPayloadRefs, isStoredPayload } from './payload-ref.js';
import { stageHolder, USER_HOLDER, type PayloadTracker } from './payload-tracker.js';

/**
 * The router's side of payload tracking. For each output chunk of a stage, the stored references in
 * it are registered with their consumers: for the last chunk, the downstream stages (those whose
 * `engine_input_source` names the stage) plus the user for a `final_output` stage; for an earlier
 * chunk, only the user (downstream stages never see it, except streaming consumers, below). What goes to the user has its stored
 * references resolved to inline bytes. An earlier chunk of a stage that streams to the next (a
 * streaming edge) is held by that consumer too. When a request ends, whatever it still holds is released.
 */
export class RouterPayloads {
  readonly #tracker: PayloadTracker | null;
  readonly #consumers = new Map<number, string[]>();
  /** Per stage, the consumers its partial outputs stream to (their chunks carry references too). */
  readonly #streamConsumers = new Map<number, string[]>();

  constructor(tracker: PayloadTracker | null, stages: readonly StagePlan[]) {
    this.#tracker = tracker;
    for (const stage of stages) {
      const from = stage.streamed_input?.from;
      if (from !== undefined)
        this.#streamConsumers.set(from, [...(this.#streamConsumers.get(from) ?? []), stageHolder(stage.stage_id)]);
      for (const source of stage.stage.engine_input_source) {
        const list = this.#consumers.get(source) ?? [];
        list.push(stageHolder(stage.stage_id));
        this.#consumers.set(source, list);
      }
    }
  }

  /**
   * Registers the payloads of one output chunk and returns the data to give the user (stored
   * references resolved) when `toUser`, else the data unchanged. A chunk that arrives after its
   * request was aborted holds nothing: its files go at once.
   */
  async onOutput(
    stageId: number,
    data: unknown,
    done: boolean,
    toUser: boolean,
    requestId: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const tracker = this.#tracker;
    if (tracker === null) return data;
    const refs = findPayloadRefs(data).filter(isStoredPayload);
    if (refs.length === 0) return data;
    const holders = signal?.aborted
      ? []
      : [...((done ? this.#consumers : this.#streamConsumers).get(stageId) ?? []), ...(toUser ? [USER_HOLDER] : [])];
    for (const ref of refs) tracker.register(ref, holders, requestId, stageId);
    return toUser && !signal?.aborted ? tracker.resolveForUser(data) : data;
  }

  /** The request ended (done, failed or aborted): its payloads are not read any more. */
  endRequest(requestId: string): void {
    this.#tracker?.releaseRequest(requestId);
  }
}
