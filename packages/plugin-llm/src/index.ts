/** `@omnistage/plugin-llm`: stage type `llm` with engines `reference` and `vllm`. */
export { LLM_PLUGIN_NAME, llmPlugin } from './llm-plugin.js';
export type { LlmPluginOptions } from './llm-plugin.js';
