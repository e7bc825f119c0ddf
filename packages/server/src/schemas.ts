/**
 * JSON Schemas of the request bodies (validated by fastify's ajv, configured strict in server.ts:
 * no coercion, no removal of unknown fields — an unknown field is a 400 naming it, never ignored).
 * Fields follow OpenAI's API; extensions are vLLM's (`top_k`) and vLLM-Omni's
 * (`sampling_params_list`, `modalities`, diffusion fields on image generation).
 */

const samplingFields = {
  max_tokens: { type: 'integer', minimum: 1 },
  max_completion_tokens: { type: 'integer', minimum: 1 },
  temperature: { type: 'number', minimum: 0 },
  top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
  top_k: { type: 'integer' },
  seed: { type: 'integer' },
  stop: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 16 }] },
  n: { type: 'integer', minimum: 1, maximum: 1 },
  user: { type: 'string' },
  /** Per-stage sampling params, in pipeline stage order (vLLM-Omni's extra body field). */
  sampling_params_list: { type: 'array', items: { anyOf: [{ type: 'object' }, { type: 'null' }] } },
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
          role: { enum: ['system', 'developer', 'user', 'assistant'] },
          content: { type: ['string', 'array', 'null'] },
          name: { type: 'string' },
        },
      },
    },
    stream: { type: 'boolean' },
    modalities: { type: 'array', minItems: 1, items: { type: 'string' } },
    ...samplingFields,
  },
} as const;

export const completionBody = {
  type: 'object',
  required: ['prompt'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    prompt: { type: 'string' },
    stream: { type: 'boolean' },
    ...samplingFields,
  },
} as const;

export const imageGenerationBody = {
  type: 'object',
  required: ['prompt'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    prompt: { type: 'string', minLength: 1 },
    n: { type: 'integer', minimum: 1, maximum: 16 },
    size: { type: 'string', pattern: '^[1-9][0-9]*x[1-9][0-9]*$' },
    response_format: { enum: ['b64_json'] },
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
    input: { type: 'string', minLength: 1 },
    voice: { type: 'string' },
    response_format: { enum: ['wav'] },
  },
} as const;

export interface SamplingFields {
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string | string[];
  n?: number;
  user?: string;
  sampling_params_list?: (Record<string, unknown> | null)[];
}

export type MessageContent = string | unknown[] | null;

export interface ChatCompletionRequest extends SamplingFields {
  model?: string;
  messages: { role: string; content?: MessageContent; name?: string }[];
  stream?: boolean;
  modalities?: string[];
}

export interface CompletionRequest extends SamplingFields {
  model?: string;
  prompt: string;
  stream?: boolean;
}

export interface ImageGenerationRequest {
  model?: string;
  prompt: string;
  n?: number;
  size?: string;
  response_format?: 'b64_json';
  seed?: number;
  num_inference_steps?: number;
  guidance_scale?: number;
  negative_prompt?: string;
  user?: string;
}

export interface SpeechRequest {
  model?: string;
  input: string;
  voice?: string;
  response_format?: 'wav';
}
