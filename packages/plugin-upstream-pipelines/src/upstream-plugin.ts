import { definePlugin, type OmnistagePlugin } from '@omnistage/core';
import { upstreamPipelines } from './upstream-pipelines.js';

export const UPSTREAM_PIPELINES_PLUGIN_NAME = 'upstream-pipelines';

/** Registers every upstream vLLM-Omni pipeline, so upstream deploy files get their real topology. */
export function upstreamPipelinesPlugin(): OmnistagePlugin {
  return definePlugin({
    name: UPSTREAM_PIPELINES_PLUGIN_NAME,
    apply(api) {
      for (const p of upstreamPipelines()) api.definePipeline(p);
    },
  });
}
