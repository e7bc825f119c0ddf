import type { PipelineOutput } from '@omnistage/core';

/** OpenAI's token counts of one text answer, as the text stage's engine reported them. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** One thing a request produced that a client can be given, by its stage's `final_output_type`. */
export type OutputPiece =
  | { type: 'text-delta'; stage_id: number; text: string }
  | { type: 'text-final'; stage_id: number; text: string; finish_reason: 'stop' | 'length'; usage: Usage }
  | { type: 'audio'; stage_id: number; data_base64: string; mime: string }
  /**
   * A window of audio an audio stage emitted while still working (`{kind: 'audio_chunk'}`, raw
   * PCM): what a streaming client can play at once. The stage's final output is the whole answer.
   */
  | { type: 'audio-chunk'; stage_id: number; data_base64: string; mime: string; sample_rate: number | null }
  | { type: 'image'; stage_id: number; data_base64: string; mime: string };

type Data = Record<string, unknown>;

function media(data: Data): { data_base64: string; mime: string } | null {
  return typeof data['data_base64'] === 'string'
    ? { data_base64: data['data_base64'], mime: typeof data['mime'] === 'string' ? data['mime'] : '' }
    : null;
}

const count = (v: unknown): number | null => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : null);

/**
 * The engine's `usage` of a final text output; an engine that reports none still gives its token
 * ids, whose count is the completion's, and no prompt count (0).
 */
function usageOf(data: Data): Usage {
  const reported = (typeof data['usage'] === 'object' && data['usage'] !== null ? data['usage'] : {}) as Data;
  const ids = Array.isArray(data['token_ids']) ? data['token_ids'].length : 0;
  const prompt = count(reported['prompt_tokens']) ?? 0;
  const completion = count(reported['completion_tokens']) ?? ids;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/**
 * Reads one pipeline output as the stage's declared output type says: text stages give token
 * deltas and a final text; audio and image stages give media (whose payloads the router already
 * resolved to inline bytes for the user). Anything else — an audio stage's token chunks, tensors —
 * is not for the client and gives null.
 */
export function pieceOf(out: PipelineOutput, outputType: string | null): OutputPiece | null {
  const data = (typeof out.data === 'object' && out.data !== null ? out.data : {}) as Data;
  const stage_id = out.stage_id;
  if (outputType === 'text') {
    if (typeof data['text'] !== 'string') return null;
    if (out.kind === 'chunk') return { type: 'text-delta', stage_id, text: data['text'] };
    return {
      type: 'text-final',
      stage_id,
      text: data['text'],
      finish_reason: data['finish_reason'] === 'length' ? 'length' : 'stop',
      usage: usageOf(data),
    };
  }
  if (outputType === 'audio' || outputType === 'image') {
    const m = media(data);
    if (!m) return null;
    if (outputType === 'audio' && out.kind === 'chunk' && data['kind'] === 'audio_chunk') {
      const rate = data['sample_rate'];
      return { type: 'audio-chunk', stage_id, ...m, sample_rate: typeof rate === 'number' ? rate : null };
    }
    const mime = m.mime || (outputType === 'audio' ? 'audio/wav' : 'image/png');
    return { type: outputType, stage_id, data_base64: m.data_base64, mime };
  }
  return null;
}
