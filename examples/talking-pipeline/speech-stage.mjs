// The `tts` stage type of the talking pipeline: one device per replica, served by the `python`
// engine by default (omnistage's plugin-python runs any stage type's Python engine). And the chunk
// processor of its streaming edge: the LLM's tokens become sentences, so espeak-ng speaks each
// sentence while the LLM writes the next.
import { definePlugin } from '@omnistage/core';

/**
 * Collects the LLM's tokens into sentences: cut at `.`, `!` or `?`, or after `max_words` words (an
 * option of the edge's connector `extra`, default 6: the reference LLM writes no punctuation).
 */
export const sentencesAsyncChunk = {
  name: 'sentences_async_chunk',
  create(ctx) {
    const maxWords = Number(ctx.options.max_words ?? 6);
    let words = [];
    const cut = (all) => {
      const out = [];
      let start = 0;
      for (let i = 0; i < words.length; i++) {
        if (/[.!?]$/.test(words[i]) || i + 1 - start >= maxWords) {
          out.push({ text: words.slice(start, i + 1).join(' ') });
          start = i + 1;
        }
      }
      words = words.slice(start);
      if (all && words.length > 0) {
        out.push({ text: words.join(' ') });
        words = [];
      }
      return out;
    };
    return {
      chunk: (data) => {
        words.push(
          ...String(data?.text ?? '')
            .split(/\s+/)
            .filter(Boolean),
        );
        return cut(false);
      },
      end: () => cut(true),
    };
  },
};

export default function speechStage() {
  return definePlugin({
    name: 'talking-pipeline-tts',
    apply(omni) {
      omni.defineStageType({ name: 'tts', defaultEngine: 'python', devicesPerReplica: () => 1 });
      omni.defineChunkProcessor(sentencesAsyncChunk);
    },
  });
}
