/**
 * The last rule of the pipeline lookup, for deploy files nothing else selects a pipeline for:
 * upstream ships each pipeline's deploy file as `vllm_omni/deploy/<key>.yaml`, and its variants as
 * `<key>_<variant>.yaml` (`qwen3_tts_high_concurrency.yaml`). Upstream itself needs the model to
 * choose; omnistage takes the file's name, so a file dry-runs as it is, and says so with a notice.
 */
import { basename, extname } from 'node:path';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { SourceLocation } from '../errors.js';
import type { PipelineChoice } from './pipeline-lookup.js';
import type { PipelineDefinition, PipelineRegistry } from './pipelines.js';

/** The pipeline a deploy file's name selects, with the notice naming the rule; null when none does. */
export function pipelineByFileName(
  file: string,
  registry: PipelineRegistry,
  where: SourceLocation,
): { choice: PipelineChoice; notice: Diagnostic } | null {
  const name = basename(file);
  const stem = basename(file, extname(file));
  const found = byStem(registry, stem) ?? byDeployFile(registry, name) ?? byVariantPrefix(registry, stem);
  if (!found) return null;
  const { definition, rule } = found;
  return {
    choice: { definition, selectedBy: 'file name' },
    notice: diagnostic(
      'OMNI_WARN_PIPELINE_FROM_FILE_NAME',
      `${name} has no \`pipeline:\` key and no model selects one, so its file name selects pipeline \`${definition.name}\` (${rule}).`,
      where,
      `Add \`pipeline: ${definition.name}\` to the file, or pass --pipeline or --model, to choose it explicitly.`,
    ),
  };
}

interface Found {
  definition: PipelineDefinition;
  rule: string;
}

function byStem(registry: PipelineRegistry, stem: string): Found | null {
  const definition = registry.get(stem);
  return definition ? { definition, rule: 'the file is named after its registry key' } : null;
}

/** Upstream's `default_deploy_config` where it differs from the key (`moss_tts.yaml` is `moss_tts_delay`'s). */
function byDeployFile(registry: PipelineRegistry, name: string): Found | null {
  const definition = registry.values().find((p) => p.deploy_file === name);
  return definition ? { definition, rule: `it is the pipeline's deploy file upstream` } : null;
}

function byVariantPrefix(registry: PipelineRegistry, stem: string): Found | null {
  const key = registry
    .names()
    .filter((k) => stem.startsWith(`${k}_`))
    .sort((a, b) => b.length - a.length)[0];
  const definition = key === undefined ? undefined : registry.get(key);
  return definition
    ? { definition, rule: `the file is named \`${key}_<variant>\`, after the longest registry key it starts with` }
    : null;
}
