import { llmEngineArgsJsonSchema } from '../engine-args-schema.js';
import { LAUNCHER_OWNED_KEYS, NEWER_VLLM_ENGINE_ARGS, OMNI_ONLY_ENGINE_KEYS } from '../vllm-flags.js';
import { readKnobs } from './knobs.js';

/**
 * The engine args the reference LLM engine takes. It stands in for vLLM, so it takes what the
 * `vllm` engine knows (the vLLM flags of the LLM schema, vLLM-Omni's own keys, the launcher's) and
 * vLLM args upstream files use, plus its test knobs and `hidden_size` (the width of the tensors it
 * emits). Anything else is a typo or meant for another engine: the planner warns at the key.
 */
export const REFERENCE_LLM_ENGINE_ARGS: readonly string[] = [
  ...new Set([
    ...Object.keys(llmEngineArgsJsonSchema.properties ?? {}),
    ...OMNI_ONLY_ENGINE_KEYS,
    ...LAUNCHER_OWNED_KEYS,
    ...NEWER_VLLM_ENGINE_ARGS,
    ...Object.keys(readKnobs({})),
    'hidden_size',
  ]),
].sort();
