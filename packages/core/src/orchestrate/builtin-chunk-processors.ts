import { OmniError } from '../errors.js';
import type { ChunkProcessorContext, ChunkProcessorDefinition } from './chunk-processor.js';

/** Upstream's default window of talker → code2wav, in codec frames. */
export const DEFAULT_CODEC_CHUNK_FRAMES = 25;

/** The token ids one output chunk carries: `token_id` of a step, or the `token_ids` of a window or final. */
function tokenIdsOf(data: unknown): number[] {
  if (typeof data !== 'object' || data === null) return [];
  const o = data as Record<string, unknown>;
  if (typeof o['token_id'] === 'number') return [o['token_id']];
  const ids = o['token_ids'];
  return Array.isArray(ids) ? ids.filter((i): i is number => typeof i === 'number') : [];
}

function frames(ctx: ChunkProcessorContext, key: string, fallback: number): number {
  const value = ctx.params[key] ?? ctx.options[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  const where =
    ctx.params[key] !== undefined ? `the request's params of stage ${ctx.to.stage_id}` : 'the edge connector';
  throw new OmniError('OMNI_USAGE', `${key} is ${JSON.stringify(value)} in ${where}; it must be a positive integer`, {
    context: { stage_id: ctx.to.stage_id, request_id: ctx.request_id },
    hint: `set ${key} to a whole number of codec frames (default ${DEFAULT_CODEC_CHUNK_FRAMES})`,
  });
}

/**
 * Thinker → talker, per decode step (upstream `thinker2talker_async_chunk`): every partial output
 * goes on as it is; the final output, which repeats what the steps carried, is not sent again.
 */
export const thinker2talkerAsyncChunk: ChunkProcessorDefinition = {
  name: 'thinker2talker_async_chunk',
  create: () => ({ chunk: (data) => [data], end: () => [] }),
};

/**
 * Talker → code2wav (upstream `talker2code2wav_async_chunk`): codec frames (token ids) collected
 * into windows of `codec_chunk_frames` (default 25), the first of `initial_codec_chunk_frames`
 * (a request param, else the edge's, else a full window); the rest goes at the end. Each window is
 * `{kind: 'codes', index, token_ids}`.
 */
export const talker2code2wavAsyncChunk: ChunkProcessorDefinition = {
  name: 'talker2code2wav_async_chunk',
  create: (ctx) => {
    const size = frames(ctx, 'codec_chunk_frames', DEFAULT_CODEC_CHUNK_FRAMES);
    let want = frames(ctx, 'initial_codec_chunk_frames', size);
    let held: number[] = [];
    let index = 0;
    let seen = 0;
    const take = (ids: number[], all: boolean): unknown[] => {
      held.push(...ids);
      const out: unknown[] = [];
      while (held.length >= want || (all && held.length > 0)) {
        const n = Math.min(want, held.length);
        out.push({ kind: 'codes', index: index++, token_ids: held.slice(0, n) });
        held = held.slice(n);
        want = size;
      }
      return out;
    };
    return {
      chunk: (data) => {
        const ids = tokenIdsOf(data);
        seen += ids.length;
        return take(ids, false);
      },
      // The final output repeats every frame (`token_ids`): only those no step carried are new.
      end: (data) => take(tokenIdsOf(data).slice(seen), true),
    };
  },
};

/** Core's own chunk processors; plugins add theirs with `defineChunkProcessor`. */
export const BUILTIN_CHUNK_PROCESSORS: readonly ChunkProcessorDefinition[] = [
  thinker2talkerAsyncChunk,
  talker2code2wavAsyncChunk,
];
