import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { OmniError, isOmniError, toOmniError } from '../errors.js';
import type { RunServices } from './run-services.js';
import type { InputProcessorContext, StagePlan, StageResult } from '../planning/types.js';
import { AsyncQueue } from './async-queue.js';
import { WaitQueue, type Gate } from './wait-queue.js';
import { entryGate } from './entry-gate.js';
import { defaultInputProcessor } from './input-processor.js';
import type { StartedReplica } from './started-replica.js';
import type { PayloadTracker } from '../connectors/payload-tracker.js';
import type { InitPlan } from '../planning/types.js';

/** What the router needs of a running pipeline (it never starts or stops anything). */
export interface RoutedPipeline {
  /** Where the router reports (the run's events and logger). */
  readonly services: RunServices;
  readonly plan: InitPlan;
  readonly payloads: PayloadTracker | null;
  /** Rejects when the pipeline fails. */
  readonly failed: Promise<never>;
  readonly stopping: boolean;
  liveReplicas(stageId: number): StartedReplica[];
}
import { RouterPayloads } from '../connectors/router-payloads.js';
import { pluginFailure } from '../hooks/plugin-errors.js';
import { describeExit, pipelineStopping, replicaLabel } from '../error-messages.js';
import { ChunkChannel } from './chunk-channel.js';
import type { ChunkProcessor } from './chunk-processor.js';
import { STREAM_WINDOW } from '../control/stream-window.js';

/** How a stage's requests are spread over its replicas. */
export type BalancePolicy = 'round-robin' | 'least-inflight';

/** How the router balances, retries and waits for a live replica. */
export interface RouterOptions {
  balance?: BalancePolicy;
  /** Retry a request once on another replica when its replica dies mid-request (default true). */
  retryOnReplicaDeath?: boolean;
  /** How long a request waits for a stage to have a live replica (e.g. during a restart). Default 30 s. */
  replicaWaitMs?: number;
  /**
   * Most requests one replica serves at once, for stages whose config sets no
   * `runtime.max_inflight_per_replica` (default: {@link maxInflightOf}); more wait in
   * a queue per stage, first come first served. The pipeline as a whole admits at most the sum of
   * its stages' capacities, so payloads parked between stages stay bounded however many requests
   * arrive. `Infinity`: unbounded.
   */
  maxInflightPerReplica?: number;
  /**
   * End-to-end deadline of every request in ms (default: none). Past it the request is aborted in
   * every stage with OMNI_REQUEST_TIMEOUT naming the stage and replica it waited on; a caller's own
   * signal aborted with an OMNI_REQUEST_TIMEOUT reason (`serve --request-timeout`) is named the same way.
   */
  requestTimeoutMs?: number;
}

/**
 * The per-replica bound of a stage that sets none. Ray Serve's `max_ongoing_requests` default (5)
 * fits replicas that run a request or a few at a time; a stage replica here is a batching engine
 * (vLLM: continuous batching up to `max_num_seqs`; upstream stage configs set 1 to 100, mostly at
 * most 64), and a bound below its batch would idle it. 64 keeps such a batch full with the next
 * requests ready, while 5,000 concurrent requests through three stages park 253 payload files
 * instead of 6,694 (bench/parked.mjs); a stage whose engine batches more gets its `max_num_seqs`.
 */
export const DEFAULT_MAX_INFLIGHT_PER_REPLICA = 64;

/** A stage's bound: its `runtime.max_inflight_per_replica`, else `fallback`, else the default (at least its `max_num_seqs`). */
export function maxInflightOf(stage: StagePlan, fallback?: number): number {
  const own = stage.stage.runtime.max_inflight_per_replica;
  if (own !== undefined && own !== null) return own;
  if (fallback !== undefined) return fallback;
  const seqs = stage.stage.engine_args['max_num_seqs'];
  return typeof seqs === 'number' && Number.isSafeInteger(seqs) && seqs > DEFAULT_MAX_INFLIGHT_PER_REPLICA
    ? seqs
    : DEFAULT_MAX_INFLIGHT_PER_REPLICA;
}

/** Options of one request: its id, per-stage sampling params and an abort signal. */
export interface GenerateOptions {
  /** Default: a random UUID. */
  requestId?: string;
  /** Sampling params per stage id, merged over each stage's `default_sampling_params` by the engine. */
  params?: Record<number, Record<string, unknown>>;
  signal?: AbortSignal;
  /**
   * Only these `final_output` stages (and the stages they read from) run; the others are skipped.
   * Default: every stage. Lets a caller that wants one modality (e.g. text) not pay for the others.
   */
  finalStages?: readonly number[];
  /**
   * The stage that takes the request's input, as if it had no sources: the stages before it are
   * skipped (`/v1/audio/speech` enters at the speech stage). It must lead to a wanted final stage.
   */
  entryStage?: number;
}

/** One item of a request's output stream: chunks and the final output of each `final_output` stage. */
export interface PipelineOutput {
  kind: 'chunk' | 'final';
  request_id: string;
  stage_id: number;
  replica_id: number;
  /** 0 for the first try; 1 when the request was retried on another replica after its replica died. */
  attempt: number;
  data: unknown;
}

function describeExitOf(replica: StartedReplica): Promise<string> {
  if (replica.host_id !== undefined) {
    // A remote replica's process is on another host: what we know is why it left the pool.
    return replica.process.exited.then(() => `on host ${replica.host_id}: ${replica.detached ?? 'detached'}`);
  }
  // The control channel can close a moment before the exit status is known.
  return Promise.race([
    replica.process.exited.then(describeExit),
    new Promise<string>((resolve) => setTimeout(() => resolve('connection lost'), 1000).unref()),
  ]);
}

/**
 * The signal of one request on one replica: the request's own, also aborted when liveness takes the
 * replica out of rotation (`left` then says why). `done` unsubscribes (the replica's controller
 * outlives its requests).
 */
function servedWhileInRotation(
  replica: StartedReplica,
  signal: AbortSignal,
): { signal: AbortSignal; left(): OmniError | null; done(): void } {
  if (replica.rotation === undefined) {
    replica.rotation = new AbortController();
    setMaxListeners(0, replica.rotation.signal); // one listener per request the replica serves
  }
  const rotation = replica.rotation.signal;
  const local = new AbortController();
  const onRequest = (): void => local.abort(signal.reason);
  const onLeft = (): void => local.abort(rotation.reason);
  signal.addEventListener('abort', onRequest, { once: true });
  rotation.addEventListener('abort', onLeft, { once: true });
  if (rotation.aborted) onLeft();
  return {
    signal: local.signal,
    left: () => (rotation.aborted && !signal.aborted ? toOmniError(rotation.reason) : null),
    done: () => {
      signal.removeEventListener('abort', onRequest);
      rotation.removeEventListener('abort', onLeft);
    },
  };
}

/**
 * A deadline error that says what the request was waiting on when it expired (other errors pass).
 * The first stage whose wait was cut wins: that is the error the request rejects with.
 */
function waitedOn(
  err: OmniError,
  requestId: string,
  what: string,
  where: { stage_id: number; replica_id?: number },
): OmniError {
  if (err.code !== 'OMNI_REQUEST_TIMEOUT' || err.context.stage_id !== undefined) return err;
  return new OmniError(
    'OMNI_REQUEST_TIMEOUT',
    `${err.message.replace(/ and was aborted in every stage$/, '')} waiting on ${what}; it was aborted in every stage`,
    {
      cause: err.cause,
      context: { ...err.context, request_id: requestId, ...where },
      hint: 'raise the request timeout, or look at that replica: its log, its load (least-inflight balancing), whether it is alive',
    },
  );
}

/** A stage's input from its sources' results; a custom processor that throws is named, with the stage and request. */
async function processInput(stage: StagePlan, sources: StageResult[], ctx: InputProcessorContext): Promise<unknown> {
  if (!stage.input_processor) return defaultInputProcessor(sources, ctx);
  try {
    return await stage.input_processor(sources, ctx);
  } catch (err) {
    throw pluginFailure(err, {
      plugin: ctx.stage.custom_process_input_func ?? 'custom_process_input_func',
      callback: 'custom_process_input_func',
      described: 'its input processor (custom_process_input_func)',
      when: 'run',
      context: { stage_id: stage.stage_id, request_id: ctx.request_id },
    });
  }
}

/**
 * The stages a request runs: the wanted `final_output` stages and, transitively, the stages they
 * read from (all stages when `finalStages` is not given). Unknown or non-final ids are an error.
 */
function stagesToRun(
  stages: readonly StagePlan[],
  finalStages: readonly number[] | undefined,
  entryStage?: number,
): readonly StagePlan[] {
  if (finalStages === undefined && entryStage === undefined) return stages;
  const byId = new Map(stages.map((s) => [s.stage_id, s] as const));
  const wanted = new Set<number>();
  const visit = (id: number): void => {
    if (wanted.has(id)) return;
    wanted.add(id);
    if (id === entryStage) return;
    for (const src of byId.get(id)?.stage.engine_input_source ?? []) visit(src);
  };
  const finals = finalStages ?? stages.filter((s) => s.stage.final_output).map((s) => s.stage_id);
  for (const id of finals) {
    if (byId.get(id)?.stage.final_output !== true) {
      throw new OmniError('OMNI_USAGE', `stage ${id} is not a final_output stage of this pipeline`, {
        hint: `final stages: ${
          stages
            .filter((s) => s.stage.final_output)
            .map((s) => s.stage_id)
            .join(', ') || 'none'
        }`,
      });
    }
    visit(id);
  }
  if (entryStage !== undefined && !wanted.has(entryStage)) {
    throw new OmniError('OMNI_USAGE', `stage ${entryStage} does not lead to the final stages ${finals.join(', ')}`, {
      hint: 'enter the pipeline at a stage the wanted outputs read from',
    });
  }
  return stages.filter((s) => wanted.has(s.stage_id));
}

/**
 * The request router of a running pipeline, with its options: balancing, retries, the in-flight
 * bound per replica and the request deadline. Create one per pipeline and send every request
 * through it (its balancing and admission count the requests it routes).
 */
export function createRouter(pipeline: RoutedPipeline, options: RouterOptions = {}): PipelineRouter {
  return new PipelineRouter(pipeline, options);
}

/**
 * Routes requests through a running pipeline's stage DAG (`engine_input_source`): a stage starts
 * when all its sources finished (a stage without sources takes the user input), its input is built
 * by its input processor, it is served by one of its live replicas (round-robin or least in-flight),
 * and the chunks of `final_output` stages stream back to the caller.
 */
export class PipelineRouter {
  readonly #services: RunServices;
  readonly #pipeline: RoutedPipeline;
  readonly #options: Required<Omit<RouterOptions, 'requestTimeoutMs' | 'maxInflightPerReplica'>> &
    Pick<RouterOptions, 'requestTimeoutMs'>;
  /** Per stage id, the most requests one of its replicas serves at once. */
  readonly #bound = new Map<number, number>();
  readonly #cursor = new Map<number, number>();
  readonly #inflight = new WeakMap<StartedReplica, number>();
  readonly #payloads: RouterPayloads;
  /** Requests admitted into the pipeline at once (the sum of the stages' capacities, following their replicas). */
  readonly #entry: Gate;
  /** Per stage, requests waiting for a replica with room. */
  readonly #slots = new Map<number, WaitQueue>();

  constructor(pipeline: RoutedPipeline, options: RouterOptions = {}) {
    this.#services = pipeline.services;
    this.#pipeline = pipeline;
    const { maxInflightPerReplica, ...rest } = options;
    this.#options = { balance: 'round-robin', retryOnReplicaDeath: true, replicaWaitMs: 30_000, ...rest };
    this.#payloads = new RouterPayloads(pipeline.payloads ?? null, pipeline.plan.stages);
    for (const stage of pipeline.plan.stages)
      this.#bound.set(stage.stage_id, maxInflightOf(stage, maxInflightPerReplica));
    this.#entry = entryGate(pipeline, this.#bound, pipeline.services.events);
  }

  /** Streams the outputs of one request. Aborting `signal` aborts every stage's in-flight work. */
  generate(input: unknown, options: GenerateOptions = {}): AsyncIterable<PipelineOutput> {
    const requestId = options.requestId ?? randomUUID();
    const toRun = stagesToRun(this.#pipeline.plan.stages, options.finalStages, options.entryStage);
    const abort = new AbortController();
    // Before any timer or listener: a chunk processor refusing the request's params throws here.
    const edges = new RequestEdges(requestId, toRun, options.params ?? {}, abort.signal);
    // A consumer that stops reading (break, return) cancels the request like an abort would.
    const queue = new AsyncQueue<PipelineOutput>(() =>
      abort.abort(new OmniError('OMNI_CANCELLED', `request ${requestId}: the consumer stopped reading its outputs`)),
    );
    const onAbort = (): void => abort.abort(options.signal?.reason);
    const deadline = this.#deadline(requestId, abort);
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });

    let admitted = false;
    void this.#entry
      .acquire(abort.signal)
      .then(() => {
        admitted = true;
        return this.#runWithRetry({ input, options, requestId, toRun, queue, abort: abort.signal }, edges);
      })
      .then(
        () => queue.end(),
        (err: unknown) => {
          abort.abort(err);
          queue.fail(err);
        },
      )
      .finally(() => {
        clearTimeout(deadline);
        if (admitted) this.#entry.release();
        options.signal?.removeEventListener('abort', onAbort);
        this.#payloads.endRequest(requestId);
      });
    return queue;
  }

  /**
   * Runs a request's stages; when a replica died and nothing reached the caller yet, runs them all
   * once more (a stage of a streaming edge cannot be retried alone: its chunks are gone). Once an
   * output reached the caller, a death fails the request: nothing is sent twice.
   */
  async #runWithRetry(req: RequestRun, firstEdges: RequestEdges): Promise<void> {
    let delivered = false;
    const out: OutputSink = {
      push: (item) => {
        delivered = true;
        req.queue.push(item);
      },
    };
    const excluded = new Map<number, StartedReplica>();
    for (let attempt = 0; ; attempt++) {
      const tries = new AbortController();
      const stop = (): void => tries.abort(req.abort.reason);
      req.abort.addEventListener('abort', stop, { once: true });
      if (req.abort.aborted) stop();
      const edges =
        attempt === 0 ? firstEdges : new RequestEdges(req.requestId, req.toRun, req.options.params ?? {}, tries.signal);
      const running = this.#runStages(req, { out, edges, signal: tries.signal, excluded, attempt });
      try {
        await Promise.all(running);
        return;
      } catch (err) {
        const dead = isOmniError(err) ? replicaDeaths.get(err) : undefined;
        tries.abort(err);
        // Before waiting: a consumer may wait for the first chunk of a producer that is gone.
        edges.close(err);
        await Promise.allSettled(running);
        if (dead === undefined || delivered || attempt > 0 || !this.#options.retryOnReplicaDeath || req.abort.aborted)
          throw err;
        excluded.set(dead.plan.stage_id, dead);
        this.#services.logger.warn(
          {
            code: 'OMNI_WARN_REQUEST_RETRIED',
            stage: dead.plan.stage_id,
            replica: dead.plan.replica_id,
            request: req.requestId,
          },
          `${replicaLabel(dead.plan, dead.process.pid)} died during request ${req.requestId} before any output reached the caller; running the request once more`,
        );
      } finally {
        edges.close(tries.signal.reason);
        req.abort.removeEventListener('abort', stop);
      }
    }
  }

  /** Starts every stage of one try of a request; a stage starts when its sources allow (DAG order). */
  #runStages(req: RequestRun, run: StageRun): Promise<StageResult>[] {
    const { input, options, requestId } = req;
    const byId = new Map(this.#pipeline.plan.stages.map((s) => [s.stage_id, s] as const));
    const results = new Map<number, Promise<StageResult>>();
    const runStage = (stage: StagePlan): Promise<StageResult> => {
      let p = results.get(stage.stage_id);
      if (!p) {
        p = (async () => {
          const cfg = stage.stage;
          const sourceOf = (id: number): Promise<StageResult> => {
            const src = byId.get(id);
            if (!src) throw new OmniError('OMNI_INTERNAL', `stage ${stage.stage_id} reads from unknown stage ${id}`);
            return runStage(src);
          };
          // The entry stage (speech enters at its speech stage) takes the request's input as if it had no sources.
          const entry = stage.stage_id === options.entryStage;
          const streamed = entry ? undefined : stage.streamed_input;
          // A streaming source runs beside this stage: its chunks, not its end, start it.
          if (streamed) void sourceOf(streamed.from).catch(() => undefined);
          const sources = entry
            ? []
            : await Promise.all(cfg.engine_input_source.filter((id) => id !== streamed?.from).map(sourceOf));
          const ctx: InputProcessorContext = { stage: cfg, userInput: input, request_id: requestId };
          const request: StageRequest = entry
            ? { input }
            : await this.#stageRequest(stage, sources, ctx, run.edges, () => sourceOf(streamed!.from), input);
          return this.#dispatch(stage, request, options.params?.[stage.stage_id] ?? {}, requestId, run, {
            out: cfg.final_output ? run.out : null,
            sink: run.edges.sinkOf(stage.stage_id),
          });
        })();
        results.set(stage.stage_id, p);
      }
      return p;
    };
    return req.toRun.map(runStage);
  }

  /**
   * What a stage is sent: its processed input, or for a stage with a streaming source the first
   * chunk and the rest as they come. With other sources too, their processed input goes first and
   * the chunks follow. A streaming source that ended without a chunk gives its whole output, as
   * without streaming.
   */
  async #stageRequest(
    stage: StagePlan,
    sources: StageResult[],
    ctx: InputProcessorContext,
    edges: RequestEdges,
    streamingSource: () => Promise<StageResult>,
    userInput: unknown,
  ): Promise<StageRequest> {
    const streamed = stage.streamed_input;
    const channel = streamed ? edges.channelInto(stage.stage_id) : undefined;
    if (streamed === undefined || channel === undefined) {
      return { input: sources.length === 0 ? userInput : await processInput(stage, sources, ctx) };
    }
    if (!(await channel.hasFirst())) {
      const all = [...sources, await streamingSource()].sort(
        (a, b) => ctx.stage.engine_input_source.indexOf(a.stage_id) - ctx.stage.engine_input_source.indexOf(b.stage_id),
      );
      return { input: await processInput(stage, all, ctx) };
    }
    if (sources.length > 0) return { input: await processInput(stage, sources, ctx), inputStream: channel };
    return { input: channel.takeFirst(), inputStream: channel };
  }

  /** Collects a request's final outputs (convenience for callers that do not stream). */
  async complete(input: unknown, options: GenerateOptions = {}): Promise<PipelineOutput[]> {
    const finals: PipelineOutput[] = [];
    for await (const out of this.generate(input, options)) if (out.kind === 'final') finals.push(out);
    return finals;
  }

  /**
   * A live replica of the stage (waiting while it has none, e.g. during a restart), counted as
   * in-flight before this returns: choice and count happen in one tick, so concurrent requests see
   * each other (least-inflight) and the common case costs no timer and no promise subscription.
   */
  async #pickReplica(stage: StagePlan, exclude: StartedReplica | null, signal: AbortSignal): Promise<StartedReplica> {
    const deadline = Date.now() + this.#options.replicaWaitMs;
    let failed: unknown = null;
    let watching = false;
    let woken = false;
    for (;;) {
      // An aborted request is never dispatched (a signal aborted before the request went out would
      // otherwise go unnoticed: its 'abort' event has already fired).
      if (signal.aborted) throw toOmniError(signal.reason, 'OMNI_CANCELLED');
      const live = this.#pipeline.liveReplicas(stage.stage_id);
      const candidates = live.length > 1 && exclude ? live.filter((r) => r !== exclude) : live;
      if (candidates.length > 0) {
        const slots = this.#slotsOf(stage.stage_id);
        const bound = this.#bound.get(stage.stage_id) ?? DEFAULT_MAX_INFLIGHT_PER_REPLICA;
        const open = candidates.filter((r) => (this.#inflight.get(r) ?? 0) < bound);
        // Every replica is full, or others queued first: wait for a request of this stage to end.
        if (open.length === 0 || (!woken && slots.length > 0)) {
          await slots.wait(signal, woken);
          woken = true;
          continue;
        }
        const replica = this.#choose(stage.stage_id, open);
        this.#inflight.set(replica, (this.#inflight.get(replica) ?? 0) + 1);
        return replica;
      }
      if (!watching) {
        watching = true;
        void this.#pipeline.failed.catch((e: unknown) => (failed = e));
      }
      if (failed) throw failed;
      if (this.#pipeline.stopping) throw pipelineStopping();
      if (Date.now() >= deadline) {
        throw new OmniError('OMNI_STAGE_UNAVAILABLE', `stage ${stage.stage_id} has no live replica`, {
          context: { stage_id: stage.stage_id },
          hint: 'its replicas died; set runtime.restart: {policy: on-failure} or add replicas',
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  #deadline(requestId: string, abort: AbortController): NodeJS.Timeout | undefined {
    const ms = this.#options.requestTimeoutMs;
    if (ms === undefined) return undefined;
    return setTimeout(
      () =>
        abort.abort(
          new OmniError('OMNI_REQUEST_TIMEOUT', `request ${requestId} ran past its deadline (${ms / 1000} s)`, {
            context: { request_id: requestId },
          }),
        ),
      ms,
    );
  }

  #slotsOf(stageId: number): WaitQueue {
    let q = this.#slots.get(stageId);
    if (!q) this.#slots.set(stageId, (q = new WaitQueue()));
    return q;
  }

  #choose(stageId: number, replicas: StartedReplica[]): StartedReplica {
    const n = this.#cursor.get(stageId) ?? 0;
    this.#cursor.set(stageId, n + 1);
    if (this.#options.balance === 'least-inflight') {
      // The least loaded replica; ties rotate (round-robin) so an idle stage still uses them all.
      let best: StartedReplica | null = null;
      let bestLoad = Infinity;
      for (let i = 0; i < replicas.length; i++) {
        const r = replicas[(n + i) % replicas.length]!;
        const load = this.#inflight.get(r) ?? 0;
        if (load < bestLoad) {
          best = r;
          bestLoad = load;
        }
      }
      return best!;
    }
    return replicas[n % replicas.length]!;
  }

  async #dispatch(
    stage: StagePlan,
    request: StageRequest,
    params: Record<string, unknown>,
    requestId: string,
    run: StageRun,
    to: { out: OutputSink | null; sink: StreamSink | null },
  ): Promise<StageResult> {
    const { input, inputStream } = request;
    const { out, sink } = to;
    const { signal, attempt: requestAttempt } = run;
    // A streamed stage cannot be sent again (its chunks were consumed, or went on downstream), nor
    // one whose outputs reached the caller (they would be sent twice).
    let retryable = inputStream === undefined && sink === null;
    let exclude: StartedReplica | null = run.excluded.get(stage.stage_id) ?? null;
    for (let attempt = 0; ; attempt++) {
      const replica: StartedReplica = await this.#pickReplica(stage, exclude, signal).catch((err: unknown) => {
        throw waitedOn(toOmniError(err), requestId, `a free replica of stage ${stage.stage_id}`, {
          stage_id: stage.stage_id,
        });
      });
      const { stage_id, replica_id } = replica.plan;
      // #pickReplica already counted it in-flight; the finally below uncounts it.
      this.#services.events.emit({
        type: 'request:dispatched',
        request_id: requestId,
        stage_id,
        replica_id,
        ...(inputStream === undefined ? {} : { streams_from: stage.streamed_input!.from }),
      });
      const startedAt = performance.now();
      let outcome: 'done' | 'aborted' | 'failed' = 'failed';
      let seen = 0;
      let last: unknown = null;
      const served = servedWhileInRotation(replica, signal);
      try {
        // Aborted in the tick since the pick: the connection would not see an abort that already fired.
        if (signal.aborted) throw toOmniError(signal.reason, 'OMNI_CANCELLED');
        for await (const chunk of replica.connection!.request(
          {
            // A later try gets its own id: a late output of an aborted try must not join it.
            request_id:
              attempt + requestAttempt === 0
                ? `${requestId}:${stage_id}`
                : `${requestId}:${stage_id}:${attempt + requestAttempt}`,
            input,
            params,
            ...(inputStream === undefined ? {} : { inputStream }),
            ...(sink === null ? {} : { outputWindow: STREAM_WINDOW }),
          },
          served.signal,
        )) {
          if (seen++ === 0) {
            const ms = Math.round((performance.now() - startedAt) * 1000) / 1000;
            this.#services.events.emit({
              type: 'request:first_chunk',
              request_id: requestId,
              stage_id,
              replica_id,
              ms,
            });
          }
          last = chunk.data;
          // shm payloads: held by downstream stages (and the user); the user's copy gets the bytes inline.
          const data = await this.#payloads.onOutput(stage_id, chunk.data, chunk.done, out !== null, requestId, signal);
          if (out !== null) retryable = false;
          out?.push({
            kind: chunk.done ? 'final' : 'chunk',
            request_id: requestId,
            stage_id,
            replica_id,
            attempt: attempt + requestAttempt,
            data,
          });
          // Waits while a streaming consumer lags: this replica's output window then fills too.
          if (sink !== null) await sink(chunk.data, chunk.done);
        }
        outcome = 'done';
        return { stage_id, replica_id, data: last };
      } catch (err) {
        // Cancelled (the caller's signal, another stage's failure, the consumer left): say why,
        // not just that the replica request was aborted.
        if (signal.aborted) {
          outcome = 'aborted';
          throw waitedOn(
            toOmniError(signal.reason, 'OMNI_CANCELLED'),
            requestId,
            replicaLabel(replica.plan, replica.process.pid),
            { stage_id, replica_id },
          );
        }
        // Liveness took the replica out of rotation (frozen, silent, not ready): as if it died.
        const e = served.left() ?? toOmniError(err);
        const died = isOmniError(e) && (e.code === 'OMNI_WORKER_EXITED' || e.code === 'OMNI_WORKER_UNRESPONSIVE');
        if (died) {
          const fate =
            e.code === 'OMNI_WORKER_UNRESPONSIVE'
              ? 'was taken out of rotation (unresponsive)'
              : `died (${await describeExitOf(replica)})`;
          if (attempt === 0 && this.#options.retryOnReplicaDeath && retryable) {
            const others = this.#pipeline.liveReplicas(stage_id).some((r) => r !== replica);
            this.#services.logger.warn(
              {
                code: 'OMNI_WARN_REQUEST_RETRIED',
                stage: stage_id,
                replica: replica_id,
                pid: replica.process.pid,
                request: requestId,
              },
              `${replicaLabel(replica.plan, replica.process.pid)} ${fate} during request ${requestId}; ` +
                (others
                  ? 'retrying it once on another replica'
                  : 'retrying it once when the stage has a live replica again (restart)'),
            );
            exclude = replica;
            continue;
          }
          const failed = new OmniError(
            'OMNI_REQUEST_FAILED',
            `request ${requestId} failed: ${replicaLabel(replica.plan, replica.process.pid)} ${fate} during it`,
            {
              cause: e,
              context: { stage_id, replica_id, request_id: requestId, pid: replica.process.pid },
              hint: 'see the replica log; runtime.restart: {policy: on-failure} or more replicas keep a stage serving',
            },
          );
          replicaDeaths.set(failed, replica);
          throw failed;
        }
        throw e;
      } finally {
        served.done();
        this.#inflight.set(replica, (this.#inflight.get(replica) ?? 1) - 1);
        this.#slotsOf(stage_id).wakeOne();
        const duration_ms = Math.round((performance.now() - startedAt) * 1000) / 1000;
        this.#services.events.emit({
          type: 'request:stage_end',
          request_id: requestId,
          stage_id,
          replica_id,
          outcome,
          duration_ms,
        });
      }
    }
  }
}

/** What one stage of a request is sent: its input, and the rest of it when it streams. */
interface StageRequest {
  input: unknown;
  inputStream?: AsyncIterable<unknown>;
}

/** Where a producer's outputs go on its streaming edges (waits while a consumer lags). */
type StreamSink = (data: unknown, done: boolean) => Promise<void>;

/**
 * The streaming edges of one request: a bounded channel and a chunk processor per edge whose
 * consumer runs, created as the request starts; closed (failed) when the request ends, so no
 * producer waits on a consumer that is gone.
 */
class RequestEdges {
  readonly #channels = new Map<number, ChunkChannel<unknown>>();
  readonly #sinks = new Map<number, { channel: ChunkChannel<unknown>; processor: ChunkProcessor }[]>();

  constructor(
    requestId: string,
    toRun: readonly StagePlan[],
    params: Record<number, Record<string, unknown>>,
    signal: AbortSignal,
  ) {
    const byId = new Map(toRun.map((s) => [s.stage_id, s] as const));
    for (const consumer of toRun) {
      const streamed = consumer.streamed_input;
      const from = streamed === undefined ? undefined : byId.get(streamed.from);
      if (streamed === undefined || from === undefined) continue;
      const channel = new ChunkChannel<unknown>();
      const processor = streamed.processor.create({
        request_id: requestId,
        from: from.stage,
        to: consumer.stage,
        options: streamed.options,
        params: params[consumer.stage_id] ?? {},
      });
      this.#channels.set(consumer.stage_id, channel);
      const list = this.#sinks.get(streamed.from) ?? [];
      list.push({ channel, processor });
      this.#sinks.set(streamed.from, list);
    }
    signal.addEventListener('abort', () => this.close(signal.reason), { once: true });
  }

  channelInto(stageId: number): ChunkChannel<unknown> | undefined {
    return this.#channels.get(stageId);
  }

  /** How a producer's outputs reach its streaming consumers, or null when it has none. */
  sinkOf(stageId: number): StreamSink | null {
    const sinks = this.#sinks.get(stageId);
    if (sinks === undefined) return null;
    return async (data, done) => {
      for (const { channel, processor } of sinks) {
        for (const chunk of done ? processor.end(data) : processor.chunk(data)) await channel.push(chunk);
        if (done) channel.end();
      }
    };
  }

  close(reason: unknown): void {
    for (const channel of this.#channels.values()) channel.fail(reason);
  }
}

/** Where a request's outputs go (the caller's queue, counting what reached it). */
interface OutputSink {
  push(item: PipelineOutput): void;
}

/** One request, as the router runs it. */
interface RequestRun {
  input: unknown;
  options: GenerateOptions;
  requestId: string;
  toRun: readonly StagePlan[];
  queue: AsyncQueue<PipelineOutput>;
  /** Aborted when the request is cancelled, times out or fails. */
  abort: AbortSignal;
}

/** One try of a request: its outputs, streaming edges, signal, and the replicas that died in an earlier try. */
interface StageRun {
  out: OutputSink;
  edges: RequestEdges;
  signal: AbortSignal;
  excluded: ReadonlyMap<number, StartedReplica>;
  /** 0, or 1 when the whole request runs again (added to each output's `attempt`). */
  attempt: number;
}

/** The replica whose death failed a stage (the request may run once more without it). */
const replicaDeaths = new WeakMap<OmniError, StartedReplica>();
