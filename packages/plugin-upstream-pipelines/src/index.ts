export { UPSTREAM_PIPELINES_PLUGIN_NAME, upstreamPipelinesPlugin } from './upstream-plugin.js';
export { upstreamPipelineData, upstreamPipelines } from './upstream-pipelines.js';
export type { UpstreamPipelineData } from './upstream-pipelines.js';
