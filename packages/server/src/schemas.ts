/**
 * JSON Schemas of the request bodies (validated by fastify's ajv, configured strict in server.ts:
 * no coercion, no removal of unknown fields — a field OpenAI does not define is a 400 naming it,
 * with a did-you-mean, never ignored). Every field of OpenAI's reference for the endpoints served
 * is accepted here; openai-fields.ts refuses the ones that would change the result and that this
 * pipeline cannot honour. Extensions are vLLM's (`top_k`) and vLLM-Omni's (`sampling_params_list`,
 * diffusion fields on image generation). docs/serving.md has the table, field by field.
 */

/** Fields OpenAI defines that change nothing here, whatever their value (type-checked only). */
const noOpFields = {
  user: { type: 'string' },
  store: { type: ['boolean', 'null'] },
  metadata: { type: ['object', 'null'] },
  service_tier: { type: ['string', 'null'] },
  prompt_cache_key: { type: 'string' },
  prompt_cache_retention: { type: ['string', 'null'] },
  safety_identifier: { type: 'string' },
  parallel_tool_calls: { type: ['boolean', 'null'] },
} as const;

const streamOptions = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { include_usage: { type: 'boolean' }, include_obfuscation: { type: 'boolean' } },
} as const;

const samplingFields = {
  max_tokens: { type: ['integer', 'null'], minimum: 1 },
  max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
  temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
  top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
  top_k: { type: 'integer' },
  seed: { type: ['integer', 'null'] },
  stop: {
    anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 16 }, { type: 'null' }],
  },
  frequency_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  presence_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  logit_bias: { type: ['object', 'null'], additionalProperties: { type: 'number', minimum: -100, maximum: 100 } },
  n: { type: ['integer', 'null'], minimum: 1, maximum: 128 },
  stream: { type: ['boolean', 'null'] },
  stream_options: streamOptions,
  /** Per-stage sampling params, in pipeline stage order (vLLM-Omni's extra body field). */
  sampling_params_list: { type: 'array', items: { anyOf: [{ type: 'object' }, { type: 'null' }] } },
  ...noOpFields,
} as const;

export const chatCompletionBody = {
  type: 'object',
  required: ['messages'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    // Parts of `content` are checked in chat-input.ts, where the message can say which part is wrong.
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        additionalProperties: false,
        properties: {
          role: { enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'] },
          content: { type: ['string', 'array', 'null'] },
          name: { type: 'string' },
          tool_calls: { type: 'array' },
          tool_call_id: { type: 'string' },
          function_call: { type: ['object', 'null'] },
          refusal: { type: ['string', 'null'] },
          audio: { type: ['object', 'null'] },
        },
      },
    },
    modalities: { type: ['array', 'null'], minItems: 1, items: { type: 'string' } },
    audio: {
      type: ['object', 'null'],
      required: ['format'],
      additionalProperties: false,
      properties: { voice: { type: ['string', 'object'] }, format: { type: 'string' } },
    },
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    response_format: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } },
    tools: { type: 'array' },
    tool_choice: { type: ['string', 'object'] },
    functions: { type: 'array' },
    function_call: { type: ['string', 'object'] },
    reasoning_effort: { type: ['string', 'null'] },
    verbosity: { type: ['string', 'null'] },
    web_search_options: { type: 'object' },
    prediction: { type: ['object', 'null'] },
    ...samplingFields,
  },
} as const;

export const completionBody = {
  type: 'object',
  required: ['prompt'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer' } },
        { type: 'array', minItems: 1, items: { type: 'array', items: { type: 'integer' } } },
      ],
    },
    echo: { type: ['boolean', 'null'] },
    best_of: { type: ['integer', 'null'], minimum: 1 },
    logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 5 },
    suffix: { type: ['string', 'null'] },
    ...samplingFields,
  },
} as const;

/** Widest side `size` may ask for: past it a request is a client error (400), not an engine failure. */
export const MAX_IMAGE_SIDE = 4096;

export const imageGenerationBody = {
  type: 'object',
  required: ['prompt'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    prompt: { type: 'string', minLength: 1 },
    n: { type: ['integer', 'null'], minimum: 1, maximum: 16 },
    size: { type: ['string', 'null'], pattern: '^(auto|[1-9][0-9]*x[1-9][0-9]*)$' },
    response_format: { type: ['string', 'null'] },
    quality: { type: ['string', 'null'] },
    style: { type: ['string', 'null'] },
    background: { type: ['string', 'null'] },
    moderation: { type: ['string', 'null'] },
    output_format: { type: ['string', 'null'] },
    output_compression: { type: ['integer', 'null'], minimum: 0, maximum: 100 },
    partial_images: { type: ['integer', 'null'], minimum: 0, maximum: 3 },
    stream: { type: ['boolean', 'null'] },
    seed: { type: 'integer' },
    num_inference_steps: { type: 'integer', minimum: 1 },
    guidance_scale: { type: 'number', minimum: 0 },
    negative_prompt: { type: 'string' },
    user: { type: 'string' },
  },
} as const;

export const speechBody = {
  type: 'object',
  required: ['input'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    input: { type: 'string', minLength: 1, maxLength: 4096 },
    voice: { type: ['string', 'object'] },
    instructions: { type: 'string' },
    response_format: { type: 'string' },
    speed: { type: 'number', minimum: 0.25, maximum: 4 },
    stream_format: { type: 'string' },
  },
} as const;

export const responseBody = {
  type: 'object',
  required: ['input'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    // Items are checked in responses-input.ts, where the message can say which item is wrong.
    input: { type: ['string', 'array'] },
    instructions: { type: ['string', 'null'] },
    max_output_tokens: { type: ['integer', 'null'], minimum: 1 },
    temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
    top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    stream: { type: ['boolean', 'null'] },
    stream_options: streamOptions,
    tools: { type: 'array' },
    tool_choice: { type: ['string', 'object'] },
    max_tool_calls: { type: ['integer', 'null'] },
    text: { type: 'object' },
    reasoning: { type: ['object', 'null'] },
    previous_response_id: { type: ['string', 'null'] },
    conversation: { type: ['string', 'object', 'null'] },
    prompt: { type: ['object', 'null'] },
    background: { type: ['boolean', 'null'] },
    include: { type: ['array', 'null'], items: { type: 'string' } },
    truncation: { type: ['string', 'null'] },
    ...noOpFields,
  },
} as const;

export interface SamplingFields {
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number;
  seed?: number | null;
  stop?: string | string[] | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  sampling_params_list?: (Record<string, unknown> | null)[];
}

export type MessageContent = string | unknown[] | null;

export interface ChatCompletionRequest extends SamplingFields {
  model?: string;
  messages: { role: string; content?: MessageContent; name?: string }[];
  modalities?: string[] | null;
  audio?: { voice?: string | { id?: string }; format: string } | null;
  [field: string]: unknown;
}

export interface CompletionRequest extends SamplingFields {
  model?: string;
  prompt: string | string[] | number[] | number[][];
  echo?: boolean | null;
  [field: string]: unknown;
}

export interface ImageGenerationRequest {
  model?: string;
  prompt: string;
  n?: number | null;
  size?: string | null;
  seed?: number;
  num_inference_steps?: number;
  guidance_scale?: number;
  negative_prompt?: string;
  [field: string]: unknown;
}

export interface SpeechRequest {
  model?: string;
  input: string;
  voice?: string | { id?: string };
  instructions?: string;
  response_format?: string;
  speed?: number;
  stream_format?: string;
}

export interface ResponseRequest {
  model?: string;
  input: string | unknown[];
  instructions?: string | null;
  max_output_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  stream?: boolean | null;
  [field: string]: unknown;
}
