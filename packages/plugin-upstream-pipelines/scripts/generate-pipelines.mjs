#!/usr/bin/env node
// Generates data/pipelines.json, the pipeline definitions this plugin registers, from the verbatim
// transcription of upstream vLLM-Omni's registry in fixtures/upstream-pipelines/pipelines.json
// (upstream commit in fixtures/upstream-pipelines/SOURCES.md). Re-run after updating the fixture:
//   npm run generate -w @omnistage/plugin-upstream-pipelines
// The output is committed so a reviewer sees every topology as data; a test checks it is current.
//
// What upstream's merge (`merge_pipeline_deploy`, SOURCES.md §3) does with the registry fields is
// resolved here, so core only has to apply generic defaults:
// - engine_args defaults: model_arch (stage, else pipeline), a diffusion stage's model_class_name,
//   engine_output_type, model_subdir, tokenizer_subdir, omni_kv_config, scheduler_cls,
//   retains_state_across_chunks, skip_mm_profiling (unless the stage needs multimodal data);
// - engine args the pipeline owns (win over the deploy file): model_stage, worker_type;
// - the input/next-stage processors, per async_chunk value (`_select_processor_funcs`).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(here, '..', 'fixtures', 'upstream-pipelines', 'pipelines.json');
const TARGET = join(here, '..', 'data', 'pipelines.json');
const UPSTREAM_COMMIT = '10906e3a6db947290581b88dc4b6f35bd2a26b41';

/** `str(getattr(c, "model_type", "")) == "dense"` → `{ model_type: "dense" }`. */
function predicateToMatch(expr) {
  if (expr === null) return null;
  const m = /^(?:lambda c: )?str\(getattr\(c, "(\w+)", ""\)\) == "([^"]*)"$/.exec(expr.trim());
  if (!m) throw new Error(`unsupported hf_config_predicate: ${expr}`);
  return { [m[1]]: m[2] };
}

function stage(pipeline, s) {
  const engineArgs = {};
  const arch = s.model_arch ?? pipeline.model_arch ?? null;
  if (arch !== null) engineArgs.model_arch = arch;
  if (s.stage_type === 'diffusion' && arch !== null) engineArgs.model_class_name = arch;
  if (s.retains_state_across_chunks) engineArgs.retains_state_across_chunks = true;
  for (const key of ['engine_output_type', 'model_subdir', 'tokenizer_subdir', 'omni_kv_config', 'scheduler_cls']) {
    if (s[key] !== null && s[key] !== undefined) engineArgs[key] = s[key];
  }
  if (!s.requires_multimodal_data) engineArgs.skip_mm_profiling = true;
  const pinned = { model_stage: s.model_stage };
  if (s.worker_type !== null) pinned.worker_type = s.worker_type;
  const processors = (eff) => ({
    custom_process_input_func: eff.custom_process_input_func,
    custom_process_next_stage_input_func: eff.custom_process_next_stage_input_func,
  });
  return {
    stage_id: s.stage_id,
    model_stage: s.model_stage,
    stage_type: s.stage_type,
    engine_input_source: s.engine_input_source,
    final_output: s.final_output,
    final_output_type: s.final_output_type,
    is_comprehension: s.is_comprehension,
    requires_multimodal_data: s.requires_multimodal_data,
    engine_args: engineArgs,
    pinned_engine_args: pinned,
    sampling_constraints: s.sampling_constraints,
    processors: {
      async_chunk: processors(s.effective_processors.async_chunk_true),
      sync: processors(s.effective_processors.async_chunk_false),
    },
    prompt_expand_func: s.prompt_expand_func,
    cfg_kv_collect_func: s.cfg_kv_collect_func,
    extras: s.extras,
  };
}

const source = JSON.parse(readFileSync(SOURCE, 'utf8'));
const pipelines = Object.values(source).map((p) => ({
  name: p.registry_key,
  alias_of: p.alias_of,
  model_types: p.model_types,
  hf_architectures: p.hf_architectures,
  hf_config_match: predicateToMatch(p.hf_config_predicate),
  diffusers_class_name: p.diffusers_class_name,
  default_deploy_config: p.default_deploy_config,
  source: p.source,
  // Upstream raises for `async_chunk: true` when stages feed each other but none can stream chunks.
  streams_chunks: p.stages.some((s) => s.async_chunk_process_next_stage_input_func !== null),
  // `qwen3_omni_moe` is a resolver upstream; its default result is transcribed at the top level,
  // the thinker-only result (for a checkpoint with `enable_audio_output: false`) is a variant.
  stages: p.stages.map((s) => stage(p, s)),
  ...(p.resolver_variants ? { variants: resolverVariants(p) } : {}),
}));

function resolverVariants(p) {
  const thinker = p.resolver_variants.QWEN3_OMNI_THINKER_ONLY_PIPELINE;
  if (!thinker || !/not hf_config\.enable_audio_output/.test(p.resolver.rule))
    throw new Error(`unsupported resolver of ${p.registry_key}`);
  return [
    {
      when: { enable_audio_output: false },
      name: thinker.model_type,
      stages: thinker.stages.map((s) => stage(thinker, s)),
    },
  ];
}
const out = {
  upstream: 'github:vllm-project/vllm-omni (via github:zzehli/vllm-omni main)',
  upstream_commit: UPSTREAM_COMMIT,
  generated_by: 'scripts/generate-pipelines.mjs from fixtures/upstream-pipelines/pipelines.json',
  pipelines,
};
const text = `${JSON.stringify(out, null, 1)}\n`;
if (process.argv.includes('--check')) {
  const current = readFileSync(TARGET, 'utf8');
  if (current !== text) {
    console.error(`${TARGET} is out of date: run npm run generate -w @omnistage/plugin-upstream-pipelines`);
    process.exit(1);
  }
} else {
  writeFileSync(TARGET, text);
  console.log(`wrote ${pipelines.length} pipelines to ${TARGET}`);
}
