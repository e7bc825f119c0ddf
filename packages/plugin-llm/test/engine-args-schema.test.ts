import { describe, expect, it } from 'vitest';
import { llmEngineArgsJsonSchema } from '../src/engine-args-schema.js';
import { VLLM_KNOWN_FLAGS } from '../src/vllm-flags.js';

describe('llmEngineArgsJsonSchema', () => {
  it('is an open object schema with a described property per known flag and omni key', () => {
    expect(llmEngineArgsJsonSchema.type).toBe('object');
    expect(llmEngineArgsJsonSchema.additionalProperties).toBe(true);
    const props = llmEngineArgsJsonSchema.properties ?? {};
    for (const key of Object.keys(VLLM_KNOWN_FLAGS)) expect(props[key]?.description, key).toBeTruthy();
    for (const key of [
      'worker_type',
      'model_stage',
      'model_arch',
      'engine_output_type',
      'async_chunk',
      'model_subdir',
      'tokenizer_subdir',
    ]) {
      expect(props[key]?.description, key).toBeTruthy();
    }
  });

  it('types values and allows null', () => {
    const props = llmEngineArgsJsonSchema.properties ?? {};
    expect(props['tensor_parallel_size']?.type).toEqual(['integer', 'null']);
    expect(props['gpu_memory_utilization']?.type).toEqual(['number', 'null']);
    expect(props['enforce_eager']?.type).toEqual(['boolean', 'null']);
    expect(props['kv_transfer_config']?.type).toEqual(['object', 'null']);
    expect(props['served_model_name']?.anyOf).toHaveLength(3);
  });

  it('is plain JSON', () => {
    expect(JSON.parse(JSON.stringify(llmEngineArgsJsonSchema))).toEqual(llmEngineArgsJsonSchema);
  });
});
