// A custom stage type in one small plugin file: `tts` turns the text of its upstream stage into
// speech-like audio. The plugin defines the stage type (how many devices a replica needs, how its
// config is checked), one engine (`reference`, a worker process), and nothing else: locks,
// spawning, attach, routing and teardown come from omnistage.
import { fileURLToPath } from 'node:url';
import { OmniError, definePlugin } from '@omnistage/core';

const WORKER = fileURLToPath(new URL('./tts-worker.mjs', import.meta.url));
const VOICES = ['alto', 'bass', 'tenor'];

export default function ttsStage(options = {}) {
  return definePlugin({
    name: 'example-tts-stage',
    coreVersion: '^0.1.0',
    apply(api) {
      api.defineStageType({
        name: 'tts',
        defaultEngine: 'reference',
        // One device per replica; a real TTS model could read a TP size from its engine args.
        devicesPerReplica: () => 1,
        validateStage(stage) {
          const voice = stage.engine_args.voice ?? options.defaultVoice ?? 'alto';
          if (!VOICES.includes(voice)) {
            throw new OmniError('OMNI_CONFIG_INVALID', `stage ${stage.stage_id}: unknown voice "${voice}"`, {
              location: stage.locations.at('engine_args.voice'),
              hint: `use one of ${VOICES.join(', ')}`,
            });
          }
        },
        engineArgsJsonSchema: {
          type: 'object',
          properties: {
            voice: { enum: VOICES, description: 'voice of the synthesised speech' },
            rate: { type: 'number' },
          },
        },
      });
      api.defineEngine({
        stageType: 'tts',
        name: 'reference',
        // The engine args it takes: any other key is a warning at its line (with did-you-mean).
        engineArgs: ['voice', 'rate'],
        resolveWorker: (ctx) => ({
          command: process.execPath,
          args: [WORKER],
          env: { TTS_VOICE: String(ctx.engineArgs.voice ?? options.defaultVoice ?? 'alto') },
          attach: 'control',
        }),
      });
    },
  });
}
