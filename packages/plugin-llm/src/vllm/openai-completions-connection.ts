import { OmniError, isOmniError } from '@omnistage/core';
import type { ReplicaConnection, ReplicaOutputChunk, ReplicaRequest } from '@omnistage/core';
import { sseData } from './sse.js';

/**
 * vLLM `SamplingParams` fields that have no field on the OpenAI completions request (engine-side
 * output plumbing); they are left out of the request body instead of being sent and ignored.
 */
export const ENGINE_ONLY_SAMPLING_FIELDS: ReadonlySet<string> = new Set([
  'output_kind',
  'detokenize',
  'stream_interval',
  'skip_clone',
  'output_text_buffer_length',
  'flat_logprobs',
]);

/** Sampling fields whose name differs on vLLM's `CompletionRequest`. */
const RENAMED_FIELDS: Readonly<Record<string, string>> = {
  // `vllm_xargs` is the request-side spelling of SamplingParams.extra_args.
  extra_args: 'vllm_xargs',
  // The pre-0.11 name of the structured-outputs params; same keys (json, regex, choice, grammar...).
  guided_decoding: 'structured_outputs',
};

/** Body keys the connection owns; sampling params cannot override them. */
const OWNED_FIELDS = new Set(['model', 'prompt', 'stream', 'stream_options']);

const isTokenIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x));

/**
 * The `prompt` of a completions request for a stage input: a string as is, a list of token ids as
 * a token prompt, an upstream stage's output by its `text` (else its `prompt`, else its token ids).
 * Returns undefined when the input carries no prompt.
 */
export function completionPromptFromInput(input: unknown): string | number[] | undefined {
  if (typeof input === 'string') return input;
  if (isTokenIds(input)) return input;
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) {
    const o = input as Record<string, unknown>;
    if (typeof o['text'] === 'string') return o['text'];
    if (typeof o['prompt'] === 'string') return o['prompt'];
    for (const key of ['prompt_token_ids', 'token_ids']) if (isTokenIds(o[key])) return o[key];
  }
  return undefined;
}

/**
 * The JSON body of `POST /v1/completions` for one request: vLLM sampling params (stage defaults,
 * then the request's) mapped onto vLLM's `CompletionRequest` — same names for the OpenAI fields
 * (`max_tokens`, `temperature`, `top_p`, `seed`, `stop`, `n`, `logprobs`, penalties...) and for
 * vLLM's extras (`top_k`, `min_p`, `repetition_penalty`, `stop_token_ids`, `ignore_eos`,
 * `min_tokens`, ...), `extra_args` → `vllm_xargs`, `guided_decoding` → `structured_outputs`;
 * `null` values (vLLM default) and engine-only fields ({@link ENGINE_ONLY_SAMPLING_FIELDS}) are
 * left out. Other keys are passed by name (vLLM ignores, with a warning, fields it does not know).
 * `stream: true` and `return_token_ids: true` (so token chunks carry ids) unless params set it.
 */
export function completionRequestBody(model: string, prompt: string | number[], params: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = { model, prompt, stream: true, return_token_ids: true };
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    if (ENGINE_ONLY_SAMPLING_FIELDS.has(key) || OWNED_FIELDS.has(key) || key.startsWith('_')) continue;
    body[RENAMED_FIELDS[key] ?? key] = value;
  }
  return body;
}

/** Options of {@link OpenAiCompletionsConnection}. */
export interface OpenAiCompletionsConnectionOptions {
  /** `http://127.0.0.1:<port>`: the replica's API server. */
  baseUrl: string;
  /** The model name requests carry (vLLM answers 404 for a name it does not serve). */
  model: string;
  /** Ids `GET /v1/models` listed (the served model names). */
  modelIds: readonly string[];
  stageId: number;
  replicaId: number;
  /** The stage's `default_sampling_params`; a request's params win. */
  defaultSamplingParams?: Record<string, unknown>;
  /** Extra keys for `info` (e.g. the pid). */
  info?: Record<string, unknown>;
}

interface CompletionChoice {
  index?: number;
  text?: string;
  finish_reason?: string | null;
  token_ids?: unknown;
}

const EXCERPT_CHARS = 300;

function excerpt(text: string): string {
  const t = text.trim().replace(/\s+/g, ' ');
  return t.length > EXCERPT_CHARS ? `${t.slice(0, EXCERPT_CHARS)}…` : t;
}

/** The message of an OpenAI / vLLM / FastAPI error body, else an excerpt of the text. */
function errorMessageOf(text: string): string {
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    const err = j['error'];
    if (typeof err === 'object' && err !== null && typeof (err as Record<string, unknown>)['message'] === 'string') {
      return excerpt((err as Record<string, unknown>)['message'] as string);
    }
    if (typeof err === 'string') return excerpt(err);
    if (typeof j['message'] === 'string') return excerpt(j['message']);
    if (j['detail'] !== undefined) return excerpt(typeof j['detail'] === 'string' ? j['detail'] : JSON.stringify(j['detail']));
  } catch {
    // not JSON
  }
  return excerpt(text) || '(empty body)';
}

function hintForStatus(status: number): string {
  if (status === 400 || status === 422) {
    return "vLLM rejected the request: check the prompt and sampling params against the model's limits (e.g. max_tokens vs --max-model-len)";
  }
  if (status === 404) return 'the replica does not serve this model name or endpoint; check served_model_name and that the engine is `vllm serve`';
  if (status >= 500) return "the engine failed while serving the request; see the replica's log lines";
  return "see the replica's log lines";
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * A {@link ReplicaConnection} to a `vllm serve` replica over its OpenAI-compatible API: each request
 * is one streaming `POST /v1/completions`. Chunks have the reference engine's shapes, so the router
 * treats both engines alike: one `{kind: 'token', index, token_id, text}` per SSE event with text
 * (`token_id` null when vLLM sent no ids or several; then `token_ids` lists them), then
 * `{kind: 'final', text, token_ids, finish_reason}` with `done: true` (`token_ids` null when vLLM
 * sent none). Aborting the signal (or leaving the iteration early) cancels the HTTP request, which
 * makes vLLM abort the generation; the iterator then throws OMNI_CANCELLED. HTTP errors, error events
 * and broken streams throw OMNI_REQUEST_FAILED naming the stage, replica and status.
 *
 * The process is stopped by core (SIGTERM to its group), so `shutdown()` only resolves; `close()`
 * fails in-flight requests (the replica is gone) and refuses new ones.
 */
export class OpenAiCompletionsConnection implements ReplicaConnection {
  readonly info: Record<string, unknown>;
  readonly #opts: OpenAiCompletionsConnectionOptions;
  readonly #url: string;
  /** In-flight requests: their fetch controllers and request ids (named when the replica dies). */
  readonly #inflight = new Map<AbortController, string>();
  #closed = false;

  constructor(options: OpenAiCompletionsConnectionOptions) {
    this.#opts = options;
    this.#url = `${options.baseUrl}/v1/completions`;
    this.info = { engine: 'vllm', base_url: options.baseUrl, model: options.model, models: [...options.modelIds], ...options.info };
  }

  get #label(): string {
    return `stage ${this.#opts.stageId} replica ${this.#opts.replicaId}`;
  }

  #context(requestId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { stage_id: this.#opts.stageId, replica_id: this.#opts.replicaId, request_id: requestId, phase: 'running', ...extra };
  }

  #failed(requestId: string, message: string, hint: string, extra: Record<string, unknown> = {}, cause?: unknown): OmniError {
    return new OmniError('OMNI_REQUEST_FAILED', `${this.#label} failed request ${requestId}: ${message}`, {
      context: this.#context(requestId, extra),
      hint,
      ...(cause === undefined ? {} : { cause }),
    });
  }

  async *request(req: ReplicaRequest, signal?: AbortSignal): AsyncIterable<ReplicaOutputChunk> {
    const id = req.request_id;
    if (this.#closed) {
      throw new OmniError('OMNI_WORKER_EXITED', `${this.#label} is not connected (its connection was closed)`, {
        context: this.#context(id),
        hint: 'the replica exited or the pipeline is stopping',
      });
    }
    const cancelled = (): OmniError =>
      new OmniError('OMNI_CANCELLED', `request ${id} was aborted`, { context: this.#context(id), cause: signal?.reason });
    if (signal?.aborted === true) throw cancelled();

    const prompt = completionPromptFromInput(req.input);
    if (prompt === undefined) {
      throw this.#failed(id, `cannot make a completion prompt from the input (${excerpt(JSON.stringify(req.input) ?? String(req.input))})`, 'a vllm stage takes a string, token ids, or an upstream output with `text`');
    }
    const params = { ...(this.#opts.defaultSamplingParams ?? {}), ...req.params };
    const n = params['n'];
    if (typeof n === 'number' && n > 1) {
      throw this.#failed(id, `n=${n} asks for several sequences; this connection streams one`, 'set n to 1 (run several requests for several samples)');
    }
    const body = completionRequestBody(this.#opts.model, prompt, params);

    const ctrl = new AbortController();
    const onAbort = (): void => ctrl.abort(cancelled());
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#inflight.set(ctrl, id);
    let seq = 0;
    let index = 0;
    let text = '';
    const ids: number[] = [];
    let idsComplete = true;
    let finish: string | null = null;
    let sawDone = false;
    try {
      let res: Response;
      try {
        res = await fetch(this.#url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
          body: JSON.stringify(body),
          signal: ctrl.signal,
        });
      } catch (err) {
        if (ctrl.signal.aborted) throw err;
        throw this.#failed(id, `POST ${this.#url} failed (${describeFetchError(err)})`, 'the replica is not answering HTTP; it may have exited (see its log lines)', {}, err);
      }
      if (!res.ok || res.body === null) {
        const bodyText = await res.text().catch(() => '');
        throw this.#failed(id, `POST ${this.#url} answered HTTP ${res.status}: ${errorMessageOf(bodyText)}`, hintForStatus(res.status), {
          status: res.status,
          body: excerpt(bodyText),
        });
      }
      try {
        for await (const data of sseData(res.body)) {
          if (data.trim() === '[DONE]') {
            sawDone = true;
            break;
          }
          let event: Record<string, unknown>;
          try {
            event = JSON.parse(data) as Record<string, unknown>;
          } catch (err) {
            throw this.#failed(id, `the stream sent an event that is not JSON: ${excerpt(data)}`, 'the server on this port is not vLLM, or broke the OpenAI streaming format', {}, err);
          }
          if (event['error'] !== undefined || event['object'] === 'error') {
            throw this.#failed(id, `the stream reported an error: ${errorMessageOf(data)}`, hintForStatus(Number((event['error'] as { code?: unknown } | undefined)?.code ?? event['code']) || 500));
          }
          const choices = Array.isArray(event['choices']) ? (event['choices'] as CompletionChoice[]) : [];
          // A usage-only event has no choices; anything but choice 0 cannot occur with n = 1.
          const choice = choices.find((c) => (c.index ?? 0) === 0);
          if (choice === undefined) continue;
          const delta = typeof choice.text === 'string' ? choice.text : '';
          const chunkIds = Array.isArray(choice.token_ids) ? choice.token_ids.filter((x): x is number => Number.isInteger(x)) : null;
          if (typeof choice.finish_reason === 'string') finish = choice.finish_reason;
          if (delta === '' && (chunkIds === null || chunkIds.length === 0)) continue;
          if (chunkIds === null) idsComplete = false;
          else ids.push(...chunkIds);
          text += delta;
          const data2: Record<string, unknown> = { kind: 'token', index, token_id: chunkIds?.length === 1 ? chunkIds[0] : null, text: delta };
          if (chunkIds !== null && chunkIds.length > 1) data2['token_ids'] = chunkIds;
          index += chunkIds !== null && chunkIds.length > 0 ? chunkIds.length : 1;
          yield { request_id: id, seq: seq++, data: data2, done: false };
        }
      } catch (err) {
        if (ctrl.signal.aborted || isOmniError(err)) throw err;
        throw this.#failed(id, `the stream from ${this.#url} broke off (${describeFetchError(err)})`, 'the replica may have exited while generating; see its log lines', {}, err);
      }
      if (!sawDone && finish === null) {
        throw this.#failed(id, `the stream from ${this.#url} ended before [DONE]`, 'the replica may have exited while generating; see its log lines');
      }
      yield {
        request_id: id,
        seq: seq++,
        data: { kind: 'final', text, token_ids: idsComplete ? ids : null, finish_reason: finish },
        done: true,
      };
    } catch (err) {
      if (ctrl.signal.aborted) {
        const reason: unknown = ctrl.signal.reason;
        throw isOmniError(reason) ? reason : cancelled();
      }
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#inflight.delete(ctrl);
      // Leaving early (the consumer stopped iterating) must still end the HTTP request, so vLLM
      // stops generating; after a complete stream this does nothing.
      if (!ctrl.signal.aborted) ctrl.abort(cancelled());
    }
  }

  async shutdown(): Promise<void> {
    // `vllm serve` has no shutdown endpoint: core stops the process (SIGTERM to its group).
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [ctrl, id] of this.#inflight) {
      ctrl.abort(
        new OmniError('OMNI_WORKER_EXITED', `${this.#label}: the connection was closed while request ${id} was in flight`, {
          context: { ...this.#context(id), phase: 'running' },
          hint: 'the replica exited or crashed while serving',
        }),
      );
    }
    this.#inflight.clear();
  }
}
