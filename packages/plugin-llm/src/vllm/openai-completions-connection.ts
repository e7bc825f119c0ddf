import { OmniError, isOmniError } from '@omnistage/core';
import type { ReplicaConnection, ReplicaOutputChunk, ReplicaRequest } from '@omnistage/core';
import { sseData } from './sse.js';
import { ChatInputError, chatMessagesFromInput } from './chat-messages.js';
import { PREFILL_KV_TRANSFER_PARAMS, isDecodeInput, type DisaggregatedSide } from './disaggregated.js';
import { replicaLabel, requestAborted } from '@omnistage/core/runtime';

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
const OWNED_FIELDS = new Set(['model', 'prompt', 'messages', 'stream', 'stream_options', 'kv_transfer_params']);

const isTokenIds = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x));

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
export function completionRequestBody(
  model: string,
  prompt: string | number[],
  params: Record<string, unknown>,
): Record<string, unknown> {
  return requestBody({ model, prompt }, params);
}

/** {@link completionRequestBody} for a chat: `messages` instead of `prompt` (`POST /v1/chat/completions`). */
export function chatRequestBody(
  model: string,
  messages: unknown[],
  params: Record<string, unknown>,
): Record<string, unknown> {
  return requestBody({ model, messages }, params);
}

function requestBody(head: Record<string, unknown>, params: Record<string, unknown>): Record<string, unknown> {
  // include_usage: vLLM's last event then carries the token counts the server reports as OpenAI's `usage`.
  const body: Record<string, unknown> = {
    ...head,
    stream: true,
    stream_options: { include_usage: true },
    return_token_ids: true,
  };
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
  /**
   * The replica's side of a vLLM prefill → decode (`NixlConnector`) edge: a prefill replica is
   * sent `max_tokens: 1`, no streaming and {@link PREFILL_KV_TRANSFER_PARAMS}, and answers one
   * final chunk carrying the `kv_transfer_params` it returned; a decode replica takes only a
   * decode input (the user's request and those params) and sends the params along.
   */
  disaggregated?: DisaggregatedSide | null;
}

interface CompletionChoice {
  index?: number;
  text?: string;
  /** Chat streams: the delta of the message. */
  delta?: { content?: string | null };
  /** Chat, not streamed: the whole message. */
  message?: { content?: string | null };
  finish_reason?: string | null;
  token_ids?: unknown;
}

/** What a streamed completion has said so far. */
interface StreamTally {
  index: number;
  text: string;
  ids: number[];
  idsComplete: boolean;
  finish: string | null;
  sawDone: boolean;
  /** The usage-only event's counts (`stream_options.include_usage`), when vLLM sent it. */
  usage?: { prompt_tokens: number; completion_tokens: number };
}

/** OpenAI's token counts from an event, when it carries them. */
function usageOf(event: Record<string, unknown>): StreamTally['usage'] {
  const u = event['usage'] as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
  if (!u || !Number.isInteger(u.prompt_tokens) || !Number.isInteger(u.completion_tokens)) return undefined;
  return { prompt_tokens: u.prompt_tokens as number, completion_tokens: u.completion_tokens as number };
}

/** Counts one streamed choice into the tally; the token chunk it makes, or undefined when it carries nothing new. */
function tallyChoice(tally: StreamTally, choice: CompletionChoice): Record<string, unknown> | undefined {
  const delta =
    typeof choice.text === 'string'
      ? choice.text
      : typeof choice.delta?.content === 'string'
        ? choice.delta.content
        : '';
  const chunkIds = Array.isArray(choice.token_ids)
    ? choice.token_ids.filter((x): x is number => Number.isInteger(x))
    : null;
  if (typeof choice.finish_reason === 'string') tally.finish = choice.finish_reason;
  if (delta === '' && (chunkIds === null || chunkIds.length === 0)) return undefined;
  if (chunkIds === null) tally.idsComplete = false;
  else tally.ids.push(...chunkIds);
  tally.text += delta;
  const chunk: Record<string, unknown> = {
    kind: 'token',
    index: tally.index,
    token_id: chunkIds?.length === 1 ? chunkIds[0] : null,
    text: delta,
  };
  if (chunkIds !== null && chunkIds.length > 1) chunk['token_ids'] = chunkIds;
  tally.index += chunkIds !== null && chunkIds.length > 0 ? chunkIds.length : 1;
  return chunk;
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
    if (j['detail'] !== undefined)
      return excerpt(typeof j['detail'] === 'string' ? j['detail'] : JSON.stringify(j['detail']));
  } catch {
    // not JSON
  }
  return excerpt(text) || '(empty body)';
}

function hintForStatus(status: number): string {
  if (status === 400 || status === 422) {
    return "vLLM rejected the request: check the prompt and sampling params against the model's limits (e.g. max_tokens vs --max-model-len)";
  }
  if (status === 404)
    return 'the replica does not serve this model name or endpoint; check served_model_name and that the engine is `vllm serve`';
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
    this.info = {
      engine: 'vllm',
      base_url: options.baseUrl,
      model: options.model,
      models: [...options.modelIds],
      ...options.info,
    };
  }

  get #label(): string {
    return replicaLabel({ stage_id: this.#opts.stageId, replica_id: this.#opts.replicaId });
  }

  #context(requestId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      stage_id: this.#opts.stageId,
      replica_id: this.#opts.replicaId,
      request_id: requestId,
      phase: 'running',
      ...extra,
    };
  }

  #failed(
    requestId: string,
    message: string,
    hint: string,
    extra: Record<string, unknown> = {},
    cause?: unknown,
  ): OmniError {
    return new OmniError('OMNI_REQUEST_FAILED', `${this.#label} failed request ${requestId}: ${message}`, {
      context: this.#context(requestId, extra),
      hint,
      ...(cause === undefined ? {} : { cause }),
    });
  }

  /** The endpoint and body of one request: a chat for chat messages, else a completion; the prefill/decode fields of a disaggregated replica. */
  #requestOf(id: string, req: ReplicaRequest): { url: string; body: Record<string, unknown> } {
    let input = req.input;
    let kv: Record<string, unknown> | null = null;
    let original: Record<string, unknown> = {};
    if (this.#opts.disaggregated === 'decode') {
      if (!isDecodeInput(input)) {
        // Never send it: without the prefill's params, vLLM would prefill the prompt again.
        throw new OmniError(
          'OMNI_KV_TRANSFER_MISSING',
          `${this.#label} decodes for a NixlConnector edge; request ${id} carries no kv_transfer_params of a prefill, so it was not sent`,
          {
            context: this.#context(id),
            hint: 'the decode stage must read from its prefill stage (engine_input_source) without a custom_process_input_func that drops kv_transfer_params',
          },
        );
      }
      kv = input.kv_transfer_params;
      original = input.params;
      input = input.user_input;
    }
    const params = { ...(this.#opts.defaultSamplingParams ?? {}), ...original, ...req.params };
    const n = params['n'];
    if (typeof n === 'number' && n > 1) {
      throw this.#failed(
        id,
        `n=${n} asks for several sequences; this connection streams one`,
        'set n to 1 (run several requests for several samples)',
      );
    }
    let messages: unknown[] | undefined;
    try {
      messages = chatMessagesFromInput(input);
    } catch (err) {
      if (!(err instanceof ChatInputError)) throw err;
      throw this.#failed(
        id,
        `cannot make a chat request from the input: ${err.message}`,
        'send chat media as data URLs (images) or wav/mp3 (audio), one per <image>/<audio> place',
      );
    }
    let body: Record<string, unknown>;
    if (messages !== undefined) {
      body = chatRequestBody(this.#opts.model, messages, params);
    } else {
      const prompt = completionPromptFromInput(input);
      if (prompt === undefined) {
        throw this.#failed(
          id,
          `cannot make a completion prompt from the input (${excerpt(JSON.stringify(input) ?? String(input))})`,
          'a vllm stage takes a string, token ids, chat messages, or an upstream output with `text`',
        );
      }
      body = completionRequestBody(this.#opts.model, prompt, params);
    }
    if (kv !== null) body['kv_transfer_params'] = kv;
    if (this.#opts.disaggregated === 'prefill') {
      // vLLM's proxy protocol: prefill only (one token), one JSON answer, KV kept for a remote decode.
      body['stream'] = false;
      // vLLM refuses stream_options on an answer that is not streamed.
      delete body['stream_options'];
      body['max_tokens'] = 1;
      if ('max_completion_tokens' in body) body['max_completion_tokens'] = 1;
      body['kv_transfer_params'] = { ...PREFILL_KV_TRANSFER_PARAMS };
    }
    return { url: messages === undefined ? this.#url : `${this.#opts.baseUrl}/v1/chat/completions`, body };
  }

  /** The final chunk of a prefill's (non-streamed) answer; an answer without `kv_transfer_params` is an error naming this replica. */
  async #prefillAnswer(id: string, url: string, res: Response): Promise<Record<string, unknown>> {
    const answer = (await res.json().catch(() => null)) as {
      choices?: CompletionChoice[];
      kv_transfer_params?: unknown;
    } | null;
    const choice = answer?.choices?.find((c) => (c.index ?? 0) === 0);
    const kv = answer?.kv_transfer_params;
    if (typeof kv !== 'object' || kv === null || Array.isArray(kv)) {
      throw new OmniError(
        'OMNI_KV_TRANSFER_MISSING',
        `${this.#label} (pid ${String(this.info['pid'] ?? '?')}) answered the prefill of request ${id} (POST ${url}) without kv_transfer_params; omnistage does not prefill again on the decode side`,
        {
          context: this.#context(id),
          hint: 'this vllm serve does not run NixlConnector (check --kv-transfer-config in its command line) or its vLLM is older than 0.9',
        },
      );
    }
    const ids = Array.isArray(choice?.token_ids)
      ? choice.token_ids.filter((x): x is number => Number.isInteger(x))
      : null;
    const text = choice?.text ?? choice?.message?.content ?? '';
    return {
      kind: 'final',
      text,
      token_ids: ids,
      finish_reason: choice?.finish_reason ?? null,
      kv_transfer_params: kv,
    };
  }

  async *request(req: ReplicaRequest, signal?: AbortSignal): AsyncIterable<ReplicaOutputChunk> {
    const id = req.request_id;
    if (this.#closed) {
      throw new OmniError('OMNI_WORKER_EXITED', `${this.#label} is not connected (its connection was closed)`, {
        context: this.#context(id),
        hint: 'the replica exited or the pipeline is stopping',
      });
    }
    const cancelled = (): OmniError => requestAborted(id, { context: this.#context(id), cause: signal?.reason });
    if (signal?.aborted === true) throw cancelled();

    const { url, body } = this.#requestOf(id, req);

    const ctrl = new AbortController();
    const onAbort = (): void => ctrl.abort(cancelled());
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#inflight.set(ctrl, id);
    let seq = 0;
    try {
      const res = await this.#post(id, url, body, ctrl.signal);
      if (body['stream'] !== true) {
        // The request's own params go along: the decode request is the original request.
        yield {
          request_id: id,
          seq: seq++,
          data: { ...(await this.#prefillAnswer(id, url, res)), request_params: req.params },
          done: true,
        };
        return;
      }
      const tally: StreamTally = { index: 0, text: '', ids: [], idsComplete: true, finish: null, sawDone: false };
      for await (const data of this.#tokenEvents(id, url, res.body!, ctrl.signal, tally)) {
        yield { request_id: id, seq: seq++, data, done: false };
      }
      if (!tally.sawDone && tally.finish === null) {
        throw this.#failed(
          id,
          `the stream from ${url} ended before [DONE]`,
          'the replica may have exited while generating; see its log lines',
        );
      }
      const { text, ids, idsComplete, finish, usage } = tally;
      yield {
        request_id: id,
        seq: seq++,
        data: {
          kind: 'final',
          text,
          token_ids: idsComplete ? ids : null,
          finish_reason: finish,
          ...(usage === undefined ? {} : { usage }),
        },
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

  /** POSTs the body; a failed connection or a non-2xx answer is an error naming this replica. */
  async #post(id: string, url: string, body: Record<string, unknown>, signal: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: body['stream'] === true ? 'text/event-stream' : 'application/json',
        },
        body: JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw this.#failed(
        id,
        `POST ${url} failed (${describeFetchError(err)})`,
        'the replica is not answering HTTP; it may have exited (see its log lines)',
        {},
        err,
      );
    }
    if (!res.ok || res.body === null) {
      const bodyText = await res.text().catch(() => '');
      throw this.#failed(
        id,
        `POST ${url} answered HTTP ${res.status}: ${errorMessageOf(bodyText)}`,
        hintForStatus(res.status),
        {
          status: res.status,
          body: excerpt(bodyText),
        },
      );
    }
    return res;
  }

  /** The token chunks of a streamed answer, counted into `tally`; a broken stream is an error naming this replica. */
  async *#tokenEvents(
    id: string,
    url: string,
    stream: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
    tally: StreamTally,
  ): AsyncGenerator<Record<string, unknown>> {
    try {
      for await (const data of sseData(stream)) {
        if (data.trim() === '[DONE]') {
          tally.sawDone = true;
          return;
        }
        const event = this.#parseEvent(id, data);
        tally.usage = usageOf(event) ?? tally.usage;
        const choices = event['choices'];
        // A usage-only event has no choices; anything but choice 0 cannot occur with n = 1.
        const choice = Array.isArray(choices)
          ? (choices as CompletionChoice[]).find((c) => (c.index ?? 0) === 0)
          : undefined;
        if (choice === undefined) continue;
        const chunk = tallyChoice(tally, choice);
        if (chunk !== undefined) yield chunk;
      }
    } catch (err) {
      if (signal.aborted || isOmniError(err)) throw err;
      throw this.#failed(
        id,
        `the stream from ${url} broke off (${describeFetchError(err)})`,
        'the replica may have exited while generating; see its log lines',
        {},
        err,
      );
    }
  }

  /** One server-sent event as JSON; an event that is not JSON, or reports an error, fails the request. */
  #parseEvent(id: string, data: string): Record<string, unknown> {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(data) as Record<string, unknown>;
    } catch (err) {
      throw this.#failed(
        id,
        `the stream sent an event that is not JSON: ${excerpt(data)}`,
        'the server on this port is not vLLM, or broke the OpenAI streaming format',
        {},
        err,
      );
    }
    if (event['error'] !== undefined || event['object'] === 'error') {
      throw this.#failed(
        id,
        `the stream reported an error: ${errorMessageOf(data)}`,
        hintForStatus(Number((event['error'] as { code?: unknown } | undefined)?.code ?? event['code']) || 500),
      );
    }
    return event;
  }

  /**
   * vLLM's `GET /health`: 200 while the engine is alive (it answers 503 once the engine core died).
   * The body is drained so the keep-alive connection is free for the next check.
   */
  async checkReady(signal: AbortSignal): Promise<boolean> {
    if (this.#closed) return false;
    const res = await fetch(`${this.#opts.baseUrl}/health`, { signal });
    await res.arrayBuffer();
    return res.ok;
  }

  async shutdown(): Promise<void> {
    // `vllm serve` has no shutdown endpoint: core stops the process (SIGTERM to its group).
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [ctrl, id] of this.#inflight) {
      ctrl.abort(
        new OmniError(
          'OMNI_WORKER_EXITED',
          `${this.#label}: the connection was closed while request ${id} was in flight`,
          {
            context: { ...this.#context(id), phase: 'running' },
            hint: 'the replica exited or crashed while serving',
          },
        ),
      );
    }
    this.#inflight.clear();
  }
}
