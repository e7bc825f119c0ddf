/**
 * A strict stand-in for the pipeline behind the server (the routes' tests need no replicas): it
 * records every request it receives, refuses what the real router refuses (a final stage that is
 * not final, params for a stage that does not exist, an output of a stage the request did not
 * run), and answers with scripted outputs. A request can be held until released or aborted.
 */
import { EventBus, OmniError, type PipelineOutput } from '@omnistage/core';
import { pino } from 'pino';
import type { ServedPipeline, ServedRequest, ServedStage, SpeechRoute } from '../src/index.js';

/** One output as a script writes it: the fake fills in request, replica and attempt. */
export type ScriptedOutput = Pick<PipelineOutput, 'kind' | 'stage_id' | 'data'>;

/** What the fake received for one request. */
export interface Received {
  input: unknown;
  request: ServedRequest;
}

/** The example pipeline's shape: a thinker (text) feeding an audio and an image stage. */
export const OMNI_STAGES: ServedStage[] = [
  { stage_id: 0, final_output_type: 'text' },
  { stage_id: 1, final_output_type: 'audio' },
  { stage_id: 2, final_output_type: 'image' },
];

/** The samples of the fake's audio answer (16-bit little-endian mono). */
export const PCM_SAMPLES = Buffer.from([1, 0, 2, 0, 3, 0]);

function tinyWav(data: Buffer): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(24_000, 24);
  h.writeUInt32LE(48_000, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

const WAV_BASE64 = tinyWav(PCM_SAMPLES).toString('base64');
const PNG_BASE64 = Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').toString('base64');

/** A script answering every final stage a request asks for: text in two deltas, a WAV, a PNG. */
export function omniScript(_input: unknown, request: ServedRequest): ScriptedOutput[] {
  const out: ScriptedOutput[] = [];
  for (const id of request.finalStages) {
    if (id === 0) {
      out.push({ kind: 'chunk', stage_id: 0, data: { text: 'hello ' } });
      out.push({ kind: 'chunk', stage_id: 0, data: { text: 'world' } });
      out.push({ kind: 'final', stage_id: 0, data: { text: 'hello world', finish_reason: 'length' } });
    } else if (id === 1) out.push({ kind: 'final', stage_id: 1, data: { data_base64: WAV_BASE64, mime: 'audio/wav' } });
    else if (id === 2) out.push({ kind: 'final', stage_id: 2, data: { data_base64: PNG_BASE64, mime: 'image/png' } });
  }
  return out;
}

export class FakePipeline implements ServedPipeline {
  readonly stages: readonly ServedStage[];
  readonly speech: SpeechRoute | null;
  readonly events = new EventBus(pino({ level: 'silent' }));
  readonly received: Received[] = [];
  readonly #script: (input: unknown, request: ServedRequest) => ScriptedOutput[];
  readonly #live = new Map<number, number>();
  #hold: Promise<void> | null = null;
  #release: () => void = () => {};
  #waiters: (() => void)[] = [];

  constructor(
    options: {
      stages?: readonly ServedStage[];
      /** Default: the example's audio stage (1), which reads the text stage. */
      speech?: SpeechRoute | null;
      script?: (input: unknown, request: ServedRequest) => ScriptedOutput[];
    } = {},
  ) {
    this.stages = options.stages ?? OMNI_STAGES;
    this.speech = options.speech === undefined ? { entryStage: 1, audioStage: 1 } : options.speech;
    this.#script = options.script ?? omniScript;
  }

  /** Requests received from now on wait before their first output until {@link release}. */
  hold(): void {
    this.#hold = new Promise((resolve) => (this.#release = resolve));
  }

  release(): void {
    this.#hold = null;
    this.#release();
  }

  /** Resolves once `n` requests have been received in all. */
  async receivedCount(n: number): Promise<void> {
    while (this.received.length < n) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  setLiveReplicas(stageId: number, n: number): void {
    this.#live.set(stageId, n);
  }

  liveReplicas(stageId: number): number {
    return this.#live.get(stageId) ?? 1;
  }

  generate(input: unknown, request: ServedRequest): AsyncIterable<PipelineOutput> {
    const ids = new Set(this.stages.map((s) => s.stage_id));
    for (const id of request.finalStages) {
      if (this.stages.find((s) => s.stage_id === id)?.final_output_type == null)
        throw new OmniError('OMNI_USAGE', `stage ${id} is not a final_output stage of this pipeline`);
    }
    for (const id of Object.keys(request.params))
      if (!ids.has(Number(id))) throw new OmniError('OMNI_USAGE', `params for stage ${id}, which does not exist`);
    if (request.entryStage !== undefined && !ids.has(request.entryStage))
      throw new OmniError('OMNI_USAGE', `entry stage ${request.entryStage} does not exist`);
    if (!request.requestId) throw new OmniError('OMNI_USAGE', 'a request without an id');
    this.received.push({ input, request });
    for (const wake of this.#waiters.splice(0)) wake();
    return this.#outputs(input, request, this.#hold);
  }

  async *#outputs(input: unknown, request: ServedRequest, hold: Promise<void> | null): AsyncGenerator<PipelineOutput> {
    if (hold) await abortable(hold, request.signal);
    for (const o of this.#script(input, request)) {
      if (!request.finalStages.includes(o.stage_id))
        throw new Error(`the script answered stage ${o.stage_id}, which this request did not run`);
      if (request.signal.aborted) throw request.signal.reason;
      yield { ...o, request_id: request.requestId, replica_id: 0, attempt: 0 };
    }
  }
}

/** Waits for `p`, or rejects with the signal's reason when it aborts first (as the router does). */
function abortable(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    void p.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
