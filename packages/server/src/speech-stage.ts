import { OmniError } from '@omnistage/core';

/** What the rule reads of a stage. */
export interface SpeechCandidate {
  stage_id: number;
  final_output_type: string | null;
  /** `engine_args.model_stage` (vLLM-Omni names the text-to-codec stage `talker`, a TTS model `tts`). */
  model_stage: string | null;
  /** `engine_input_source`. */
  sources: readonly number[];
}

/** Where `/v1/audio/speech` enters the pipeline and which final stage's audio it answers with. */
export interface SpeechRoute {
  entryStage: number;
  audioStage: number;
}

const SPEECH_MODEL_STAGES = ['talker', 'tts'];

/**
 * The speech stage, the stage that turns text into audio, by the first rule that names one:
 * 1. `--speech-stage ID` (explicit);
 * 2. the first stage whose `model_stage` is `talker` or `tts` (vLLM-Omni's text-to-speech stages);
 * 3. the first `final_output_type: audio` stage that reads nothing, or reads a text stage directly.
 * The answer is the first audio final stage at or after it. None: null (the endpoint answers 400).
 */
export function speechRoute(stages: readonly SpeechCandidate[], explicit?: number): SpeechRoute | null {
  const byId = new Map(stages.map((s) => [s.stage_id, s] as const));
  const leadsTo = (from: number, to: number): boolean =>
    from === to || (byId.get(to)?.sources ?? []).some((src) => leadsTo(from, src));
  const audioAfter = (entry: number): SpeechRoute | null => {
    const audio = stages.find((s) => s.final_output_type === 'audio' && leadsTo(entry, s.stage_id));
    return audio ? { entryStage: entry, audioStage: audio.stage_id } : null;
  };
  if (explicit !== undefined) {
    const route = byId.has(explicit) ? audioAfter(explicit) : null;
    if (!route)
      throw new OmniError('OMNI_USAGE', `--speech-stage ${explicit} is not a stage leading to an audio output`, {
        hint: `stages: ${stages.map((s) => `${s.stage_id} (${s.final_output_type ?? 'inner'})`).join(', ')}`,
      });
    return route;
  }
  for (const s of stages) {
    if (s.model_stage !== null && SPEECH_MODEL_STAGES.includes(s.model_stage)) {
      const route = audioAfter(s.stage_id);
      if (route) return route;
    }
  }
  const speaker = stages.find(
    (s) =>
      s.final_output_type === 'audio' &&
      (s.sources.length === 0 || s.sources.some((src) => byId.get(src)?.final_output_type === 'text')),
  );
  return speaker ? { entryStage: speaker.stage_id, audioStage: speaker.stage_id } : null;
}
