// The `tts` stage type of the talking pipeline: one device per replica, served by the `python`
// engine by default (omnistage's plugin-python runs any stage type's Python engine).
import { definePlugin } from '@omnistage/core';

export default function speechStage() {
  return definePlugin({
    name: 'talking-pipeline-tts',
    apply(omni) {
      omni.defineStageType({ name: 'tts', defaultEngine: 'python', devicesPerReplica: () => 1 });
    },
  });
}
