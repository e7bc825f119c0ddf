/**
 * VLLM_KNOWN_FLAGS against vLLM's documented `vllm serve` flags, so a misspelt key in the table (a
 * flag vLLM would refuse at start, after the plan said nothing) fails here.
 *
 * The list below is written down from vLLM's own argument definitions:
 * - `vllm/engine/arg_utils.py` `EngineArgs.add_cli_args` (v0.10 → v0.13: ModelConfig, LoadConfig,
 *   AttentionConfig, StructuredOutputsConfig, ParallelConfig, CacheConfig, MultiModalConfig,
 *   LoRAConfig, ObservabilityConfig, SchedulerConfig, CompilationConfig, VllmConfig groups).
 *   Fields of those config dataclasses typed `bool` get `argparse.BooleanOptionalAction`
 *   (`--x` / `--no-x`); list-typed fields get `nargs='+'`; a few flags are added by hand with
 *   `action='store_true'` (`--disable-log-stats`, `--aggregate-engine-logging`).
 * - `vllm/entrypoints/openai/cli_args.py` (FrontendArgs) and `vllm/entrypoints/cli/serve.py`
 *   (`--headless`, `--api-server-count`).
 * - design/anchors-serving.md §2.6 (the flags a launcher typically emits).
 * It is a union over releases: flags removed later (e.g. `--rope-scaling`) stay listed.
 */
import { describe, expect, it } from 'vitest';
import {
  LAUNCHER_OWNED_KEYS,
  OMNI_ONLY_ENGINE_KEYS,
  VLLM_KNOWN_FLAGS,
  toKebabFlag,
  type VllmFlagSpec,
} from '../src/vllm-flags.js';

/** `value`: takes one argument; `bool`: BooleanOptionalAction; `store_true`: bare flag only; `list`: nargs='+'. */
type FlagKind = 'value' | 'bool' | 'store_true' | 'list';

const DOCUMENTED_VLLM_SERVE_FLAGS: Readonly<Record<string, FlagKind>> = {
  // ModelConfig
  '--model': 'value',
  '--runner': 'value',
  '--convert': 'value',
  '--task': 'value',
  '--tokenizer': 'value',
  '--tokenizer-mode': 'value',
  '--trust-remote-code': 'bool',
  '--dtype': 'value',
  '--seed': 'value',
  '--hf-config-path': 'value',
  '--allowed-local-media-path': 'value',
  '--allowed-media-domains': 'list',
  '--revision': 'value',
  '--code-revision': 'value',
  '--rope-scaling': 'value',
  '--rope-theta': 'value',
  '--tokenizer-revision': 'value',
  '--max-model-len': 'value',
  '--quantization': 'value',
  '--enforce-eager': 'bool',
  '--max-logprobs': 'value',
  '--logprobs-mode': 'value',
  '--disable-sliding-window': 'bool',
  '--disable-cascade-attn': 'bool',
  '--skip-tokenizer-init': 'bool',
  '--enable-prompt-embeds': 'bool',
  '--served-model-name': 'list',
  '--config-format': 'value',
  '--hf-token': 'value',
  '--hf-overrides': 'value',
  '--pooler-config': 'value',
  '--override-pooler-config': 'value',
  '--logits-processor-pattern': 'value',
  '--generation-config': 'value',
  '--override-generation-config': 'value',
  '--enable-sleep-mode': 'bool',
  '--model-impl': 'value',
  '--override-attention-dtype': 'value',
  '--logits-processors': 'list',
  '--io-processor-plugin': 'value',
  // LoadConfig
  '--load-format': 'value',
  '--download-dir': 'value',
  '--safetensors-load-strategy': 'value',
  '--model-loader-extra-config': 'value',
  '--ignore-patterns': 'list',
  '--use-tqdm-on-load': 'bool',
  '--pt-load-map-location': 'value',
  // AttentionConfig
  '--attention-backend': 'value',
  // StructuredOutputsConfig
  '--reasoning-parser': 'value',
  '--reasoning-parser-plugin': 'value',
  '--guided-decoding-backend': 'value',
  // ParallelConfig
  '--distributed-executor-backend': 'value',
  '--pipeline-parallel-size': 'value',
  '--tensor-parallel-size': 'value',
  '--decode-context-parallel-size': 'value',
  '--prefill-context-parallel-size': 'value',
  '--data-parallel-size': 'value',
  '--data-parallel-rank': 'value',
  '--data-parallel-start-rank': 'value',
  '--data-parallel-size-local': 'value',
  '--data-parallel-address': 'value',
  '--data-parallel-rpc-port': 'value',
  '--data-parallel-backend': 'value',
  '--data-parallel-hybrid-lb': 'bool',
  '--data-parallel-external-lb': 'bool',
  '--enable-expert-parallel': 'bool',
  '--all2all-backend': 'value',
  '--enable-dbo': 'bool',
  '--enable-eplb': 'bool',
  '--eplb-config': 'value',
  '--expert-placement-strategy': 'value',
  '--max-parallel-loading-workers': 'value',
  '--ray-workers-use-nsight': 'bool',
  '--disable-custom-all-reduce': 'bool',
  '--worker-cls': 'value',
  '--worker-extension-cls': 'value',
  // CacheConfig
  '--block-size': 'value',
  '--gpu-memory-utilization': 'value',
  '--kv-cache-memory-bytes': 'value',
  '--swap-space': 'value',
  '--kv-cache-dtype': 'value',
  '--num-gpu-blocks-override': 'value',
  '--enable-prefix-caching': 'bool',
  '--prefix-caching-hash-algo': 'value',
  '--cpu-offload-gb': 'value',
  '--calculate-kv-scales': 'bool',
  '--kv-sharing-fast-prefill': 'bool',
  '--mamba-cache-dtype': 'value',
  '--mamba-ssm-cache-dtype': 'value',
  // MultiModalConfig
  '--limit-mm-per-prompt': 'value',
  '--media-io-kwargs': 'value',
  '--mm-processor-kwargs': 'value',
  '--mm-processor-cache-gb': 'value',
  '--mm-processor-cache-type': 'value',
  '--mm-encoder-tp-mode': 'value',
  '--interleave-mm-strings': 'bool',
  '--skip-mm-profiling': 'bool',
  // LoRAConfig
  '--enable-lora': 'bool',
  '--max-loras': 'value',
  '--max-lora-rank': 'value',
  '--lora-dtype': 'value',
  '--max-cpu-loras': 'value',
  '--fully-sharded-loras': 'bool',
  // ObservabilityConfig
  '--show-hidden-metrics-for-version': 'value',
  '--otlp-traces-endpoint': 'value',
  '--collect-detailed-traces': 'list',
  // SchedulerConfig
  '--max-num-batched-tokens': 'value',
  '--max-num-seqs': 'value',
  '--max-num-partial-prefills': 'value',
  '--max-long-partial-prefills': 'value',
  '--long-prefill-token-threshold': 'value',
  '--num-lookahead-slots': 'value',
  '--scheduling-policy': 'value',
  '--enable-chunked-prefill': 'bool',
  '--disable-chunked-mm-input': 'bool',
  '--scheduler-cls': 'value',
  '--disable-hybrid-kv-cache-manager': 'bool',
  '--async-scheduling': 'bool',
  // CompilationConfig
  '--cudagraph-capture-sizes': 'list',
  '--cuda-graph-sizes': 'list',
  '--max-cudagraph-capture-size': 'value',
  // VllmConfig
  '--speculative-config': 'value',
  '--kv-transfer-config': 'value',
  '--kv-events-config': 'value',
  '--compilation-config': 'value',
  '--additional-config': 'value',
  '--structured-outputs-config': 'value',
  // Added by hand in EngineArgs.add_cli_args
  '--disable-log-stats': 'store_true',
  '--aggregate-engine-logging': 'store_true',
  // Frontend (vllm serve / the OpenAI API server)
  '--host': 'value',
  '--port': 'value',
  '--uds': 'value',
  '--uvicorn-log-level': 'value',
  '--disable-uvicorn-access-log': 'bool',
  '--disable-access-log-for-endpoints': 'value',
  '--api-key': 'list',
  '--chat-template': 'value',
  '--root-path': 'value',
  '--enable-auto-tool-choice': 'bool',
  '--tool-call-parser': 'value',
  '--max-log-len': 'value',
  '--enable-log-requests': 'bool',
  '--shutdown-timeout': 'value',
  '--headless': 'store_true',
  '--api-server-count': 'value',
};

/** The flags anchors-serving.md §2.6 says a launcher typically emits (besides --host/--port). */
const LAUNCHER_EMITS = [
  '--tensor-parallel-size',
  '--pipeline-parallel-size',
  '--data-parallel-size',
  '--data-parallel-size-local',
  '--data-parallel-address',
  '--data-parallel-rpc-port',
  '--data-parallel-start-rank',
  '--headless',
  '--api-server-count',
  '--gpu-memory-utilization',
  '--max-model-len',
  '--max-num-seqs',
  '--max-num-batched-tokens',
  '--enforce-eager',
  '--trust-remote-code',
  '--served-model-name',
  '--distributed-executor-backend',
  '--kv-transfer-config',
  '--kv-events-config',
  '--shutdown-timeout',
  '--disable-access-log-for-endpoints',
];

/** What is wrong with one table entry against the documented flags, or undefined. */
function mismatch(key: string, spec: VllmFlagSpec): string | undefined {
  const flag = `--${toKebabFlag(key)}`;
  const kind = DOCUMENTED_VLLM_SERVE_FLAGS[flag];
  if (kind === undefined) return `${key}: ${flag} is not a documented vllm serve flag`;
  if (spec.type === 'boolean') {
    if (kind !== 'bool' && kind !== 'store_true')
      return `${key}: ${flag} takes a value in vLLM, but the table says boolean`;
    if ((spec.negatable === true) !== (kind === 'bool')) {
      return `${key}: ${flag} is ${kind === 'bool' ? 'BooleanOptionalAction (--no- exists)' : 'store_true (no --no- form)'}, the table says negatable=${spec.negatable === true}`;
    }
    return undefined;
  }
  if (kind === 'bool' || kind === 'store_true')
    return `${key}: ${flag} is a boolean flag in vLLM, the table says ${spec.type}`;
  if ((spec.nargs === true) !== (kind === 'list'))
    return `${key}: ${flag} nargs='+' is ${kind === 'list'}, the table says nargs=${spec.nargs === true}`;
  return undefined;
}

describe('VLLM_KNOWN_FLAGS against the documented vllm serve flags', () => {
  it('every key is a documented flag, spelled the same, with the same action', () => {
    const problems = Object.entries(VLLM_KNOWN_FLAGS)
      .map(([key, spec]) => mismatch(key, spec))
      .filter((p): p is string => p !== undefined);
    expect(problems).toEqual([]);
  });

  it('the check catches typos and wrong actions', () => {
    expect(mismatch('tensor_paralel_size', { type: 'integer', description: '' })).toContain('not a documented');
    expect(mismatch('gpu_memory_utilisation', { type: 'number', description: '' })).toContain('not a documented');
    expect(mismatch('headless', { type: 'boolean', negatable: true, description: '' })).toContain('store_true');
    expect(mismatch('enforce_eager', { type: 'boolean', description: '' })).toContain('BooleanOptionalAction');
    expect(mismatch('served_model_name', { type: 'string', description: '' })).toContain("nargs='+'");
    expect(mismatch('max_num_seqs', { type: 'boolean', description: '' })).toContain('takes a value');
  });

  it('knows every flag a launcher typically emits (anchors-serving.md §2.6)', () => {
    const known = new Set(Object.keys(VLLM_KNOWN_FLAGS).map((k) => `--${toKebabFlag(k)}`));
    expect(LAUNCHER_EMITS.filter((f) => !known.has(f))).toEqual([]);
    // The launcher owns host, port and the model (positional): never in the flag table.
    for (const owned of LAUNCHER_OWNED_KEYS) expect(VLLM_KNOWN_FLAGS).not.toHaveProperty(owned);
  });

  it('never drops a real vLLM flag as an omnistage-only key', () => {
    const dropped = [...OMNI_ONLY_ENGINE_KEYS].filter(
      (k) => DOCUMENTED_VLLM_SERVE_FLAGS[`--${toKebabFlag(k)}`] !== undefined,
    );
    expect(dropped).toEqual([]);
    expect([...OMNI_ONLY_ENGINE_KEYS].filter((k) => k in VLLM_KNOWN_FLAGS)).toEqual([]);
  });
});
