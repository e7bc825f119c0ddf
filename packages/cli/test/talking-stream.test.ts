import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers.js';

interface Measured {
  firstAudio: number | null;
  llmDone: number | null;
  /** `stage:kind:data.kind` of every output, in arrival order. */
  order: string[];
}
type Measure = (asyncChunk: boolean, prompts: string[]) => Promise<Measured[]>;

describe('examples/talking-pipeline streams: espeak-ng speaks sentence by sentence while the LLM writes', () => {
  it('gives the first audio before the LLM finished, one chunk per sentence; without streaming only after', async () => {
    const url = pathToFileURL(join(REPO_ROOT, 'examples/talking-pipeline/first-audio.mjs')).href;
    const { measure } = (await import(url)) as { measure: Measure };
    const [streamed] = await measure(true, ['tell me about the sea']);
    const pos = (o: Measured, what: string): number => o.order.indexOf(what);
    const firstAudio = streamed!.order.findIndex((o) => o.startsWith('1:chunk:audio_chunk'));
    expect(firstAudio, streamed!.order.join(' ')).toBeGreaterThanOrEqual(0);
    expect(firstAudio, 'the first sentence was heard while the LLM was still writing').toBeLessThan(
      pos(streamed!, '0:final:final'),
    );
    // 24 words at 6 words a sentence: four sentences, four audio chunks, then the whole WAV.
    expect(streamed!.order.filter((o) => o === '1:chunk:audio_chunk')).toHaveLength(4);
    expect(streamed!.order.at(-1)).toBe('1:final:audio');

    const [whole] = await measure(false, ['tell me about the sea']);
    expect(whole!.order.filter((o) => o.startsWith('1:'))).toEqual(['1:final:audio']);
    expect(pos(whole!, '1:final:audio')).toBeGreaterThan(pos(whole!, '0:final:final'));
  }, 120_000);
});
