export { LLM_PLUGIN_NAME, REFERENCE_LLM_WORKER, llmPlugin, vllmReplicaPort } from './llm-plugin.js';
export type { LlmPluginOptions } from './llm-plugin.js';
export { applyCliTokenizer } from './cli-tokenizer.js';
export type { ApplyCliTokenizerOptions } from './cli-tokenizer.js';
export { WORKER_CLASS_PATHS, WORKER_TYPES, resolveWorkerCls } from './worker-cls.js';
export type { WorkerType } from './worker-cls.js';
export { getStageDevicesPerReplica, getStageTpSize } from './stage-devices.js';
export { llmLockDeviceCount } from './lock-device-count.js';
export { QWEN3_OMNI_MOE_ARCH, buildEngineArgsDict } from './engine-args-dict.js';
export type { BuildEngineArgsOptions, BuiltEngineArgs } from './engine-args-dict.js';
export { isExistingDirectory, resolveModelSubdirs } from './model-subdir.js';
export { VLLM_SAMPLING_PARAM_FIELDS, validateLlmSamplingParams } from './sampling-params.js';
export type { SamplingFieldType } from './sampling-params.js';
export { deriveVllmServeArgv, vllmServeArgv } from './vllm-serve-argv.js';
export type { VllmServeArgv, VllmServeArgvOptions } from './vllm-serve-argv.js';
export { LAUNCHER_OWNED_KEYS, OMNI_ONLY_ENGINE_KEYS, VLLM_KNOWN_FLAGS, toKebabFlag } from './vllm-flags.js';
export type { VllmFlagSpec } from './vllm-flags.js';
export { attachVllmServe, modelIdsOf } from './vllm/attach.js';
export type { AttachVllmServeOptions } from './vllm/attach.js';
export {
  ENGINE_ONLY_SAMPLING_FIELDS,
  OpenAiCompletionsConnection,
  completionPromptFromInput,
  completionRequestBody,
} from './vllm/openai-completions-connection.js';
export type { OpenAiCompletionsConnectionOptions } from './vllm/openai-completions-connection.js';
export { sseData } from './vllm/sse.js';
export { llmEngineArgsJsonSchema } from './engine-args-schema.js';
export { generateTokens, DEFAULT_REFERENCE_SAMPLING } from './reference/generate.js';
export type { GeneratedToken, ReferenceSamplingParams } from './reference/generate.js';
