import { badField } from './http-error.js';

/**
 * A field of OpenAI's API that changes the result and that this server honours only for some
 * values: any other value is a 400 saying it is not supported by this pipeline (never ignored).
 */
export interface FieldRule {
  field: string;
  /** True for the values this server honours (absent and null always pass). */
  accepts(value: unknown): boolean;
  /** Why the other values are refused, and what to send instead. */
  why: string;
}

const isEmpty = (v: unknown): boolean => Array.isArray(v) && v.length === 0;
const oneOf =
  (...values: unknown[]) =>
  (v: unknown): boolean =>
    values.includes(v);
const never = (): boolean => false;

/** Refuses the first field whose value this pipeline cannot honour. */
export function refuseUnsupported(body: Record<string, unknown>, rules: readonly FieldRule[]): void {
  for (const rule of rules) {
    const value = body[rule.field];
    if (value === undefined || value === null || rule.accepts(value)) continue;
    throw badField(
      rule.field,
      `"${rule.field}": ${JSON.stringify(value)} is not supported by this pipeline: ${rule.why} (docs/serving.md lists what each field does here)`,
    );
  }
}

const TOOLS = 'the stages take no tool definitions and call no tools; send the request without them';
const toolChoice = (v: unknown): boolean => v === 'none' || v === 'auto';

/** Chat completions: what is honoured only in part. */
export const CHAT_RULES: readonly FieldRule[] = [
  { field: 'n', accepts: oneOf(1), why: 'one answer per modality is generated (n: 1)' },
  { field: 'logprobs', accepts: oneOf(false), why: 'the engines report no log probabilities' },
  { field: 'top_logprobs', accepts: oneOf(0), why: 'the engines report no log probabilities' },
  {
    field: 'response_format',
    accepts: (v) => (v as { type?: unknown }).type === 'text',
    why: 'there is no structured output (json_object, json_schema); only {"type": "text"}',
  },
  { field: 'tools', accepts: isEmpty, why: TOOLS },
  { field: 'functions', accepts: isEmpty, why: TOOLS },
  { field: 'tool_choice', accepts: toolChoice, why: TOOLS },
  { field: 'function_call', accepts: toolChoice, why: TOOLS },
  { field: 'reasoning_effort', accepts: never, why: 'no engine here has a reasoning budget' },
  { field: 'verbosity', accepts: never, why: 'no engine here has a verbosity setting; use max_tokens' },
  { field: 'web_search_options', accepts: never, why: 'the server searches nothing' },
];

/** Completions: what is honoured only in part. */
export const COMPLETION_RULES: readonly FieldRule[] = [
  { field: 'n', accepts: oneOf(1), why: 'one completion per prompt is generated (n: 1)' },
  { field: 'best_of', accepts: oneOf(1), why: 'one completion per prompt is generated (best_of: 1)' },
  { field: 'logprobs', accepts: oneOf(0), why: 'the engines report no log probabilities' },
  { field: 'suffix', accepts: oneOf(''), why: 'the engines do not insert text between a prefix and a suffix' },
  {
    field: 'prompt',
    accepts: (v) => typeof v === 'string' || (v as unknown[]).every((p) => typeof p === 'string'),
    why: 'token ids need the model tokenizer, which the server does not have; send the prompt as text',
  },
];

/** Image generation: what is honoured only in part. */
export const IMAGE_RULES: readonly FieldRule[] = [
  {
    field: 'response_format',
    accepts: oneOf('b64_json'),
    why: 'the server stores no images to link to; use "b64_json"',
  },
  { field: 'output_format', accepts: oneOf('png'), why: 'the image stage encodes PNG; use "png"' },
  { field: 'quality', accepts: oneOf('auto'), why: 'the image stage has one quality; use num_inference_steps' },
  { field: 'style', accepts: never, why: 'the image stage has no style presets; describe the style in the prompt' },
  { field: 'background', accepts: oneOf('auto', 'opaque'), why: 'the image stage paints opaque images' },
  { field: 'partial_images', accepts: oneOf(0), why: 'images are returned whole' },
  { field: 'stream', accepts: oneOf(false), why: 'images are returned whole, in one answer' },
];

/** `/v1/audio/speech`: what is honoured only in part. */
export const SPEECH_RULES: readonly FieldRule[] = [
  {
    field: 'stream_format',
    accepts: oneOf('audio'),
    why: 'speech is sent as one audio answer; use "audio"',
  },
];

/** Responses: what is honoured only in part. */
export const RESPONSE_RULES: readonly FieldRule[] = [
  { field: 'tools', accepts: isEmpty, why: TOOLS },
  { field: 'tool_choice', accepts: toolChoice, why: TOOLS },
  {
    field: 'previous_response_id',
    accepts: never,
    why: 'the server stores no responses (store is ignored); send the whole conversation as input',
  },
  { field: 'conversation', accepts: never, why: 'the server stores no conversations; send them as input' },
  { field: 'prompt', accepts: never, why: 'the server stores no prompt templates' },
  { field: 'background', accepts: oneOf(false), why: 'responses are generated while the request waits' },
  { field: 'top_logprobs', accepts: oneOf(0), why: 'the engines report no log probabilities' },
  { field: 'include', accepts: isEmpty, why: 'there is nothing extra to include (no tools, no reasoning)' },
  {
    field: 'text',
    accepts: (v) => {
      const format = (v as { format?: { type?: unknown } }).format;
      return format === undefined || format.type === 'text';
    },
    why: 'there is no structured output; only {"format": {"type": "text"}}',
  },
  {
    field: 'reasoning',
    accepts: (v) => Object.values(v as object).every((x) => x === null),
    why: 'no engine here has a reasoning budget',
  },
];
