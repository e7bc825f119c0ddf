/**
 * Upstream's lookup rule (`get_pipeline_config`, fixtures SOURCES.md §2): which registered pipeline
 * gives a deploy file its topology. In order: `--pipeline`, the file's `pipeline:` key (an unknown
 * name is an error, never a fallback), then the model: a local directory's `config.json`
 * `model_type` (or `architecture`), its `model_index.json` `_class_name`, a hub id's longest
 * registry key inside its basename, and last the `architectures` fallback. Where none of these
 * selects one, the deploy file's name may (pipeline-by-file-name.ts).
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { OmniError, type SourceLocation } from '../errors.js';
import { didYouMeanPrefix } from './did-you-mean.js';
import type { PipelineDefinition, PipelineRegistry } from './pipelines.js';

/** How a pipeline was selected, for `plan` and messages. */
export type PipelineSelection =
  '--pipeline' | 'pipeline key' | 'model type' | 'diffusers class' | 'model name' | 'architectures' | 'file name';

/** The pipeline the lookup selected and which rule selected it. */
export interface PipelineChoice {
  definition: PipelineDefinition;
  selectedBy: PipelineSelection;
}

/** What the lookup rule reads: the registry, `--pipeline`, the file's `pipeline:` key and the model. */
export interface PipelineLookupInput {
  registry: PipelineRegistry;
  /** `--pipeline NAME`: wins over the file. */
  flag?: string | undefined;
  /** The file's `pipeline:` value and where it is written. */
  key?: { name: string; loc: SourceLocation } | undefined;
  /** `--model` (no location) or the file's `model:`. */
  model?: { value: string; loc?: SourceLocation | undefined } | undefined;
}

/** The selected pipeline, or null when neither a name nor the model selects one. */
export function choosePipeline(input: PipelineLookupInput): PipelineChoice | null {
  const { registry } = input;
  const config =
    input.model && isDirectory(resolve(input.model.value))
      ? readJson(join(resolve(input.model.value), 'config.json'))
      : undefined;
  let choice: PipelineChoice | null;
  if (input.flag !== undefined)
    choice = { definition: named(registry, input.flag, undefined, '--pipeline'), selectedBy: '--pipeline' };
  else if (input.key)
    choice = { definition: named(registry, input.key.name, input.key.loc, '`pipeline:`'), selectedBy: 'pipeline key' };
  else choice = input.model ? byModel(registry, input.model.value) : null;
  return choice && config ? withVariant(choice, config) : choice;
}

/** The variant the model's config selects (upstream resolvers get the HF config too). */
function withVariant(choice: PipelineChoice, config: Record<string, unknown>): PipelineChoice {
  const variant = choice.definition.variants?.find((v) =>
    Object.entries(v.when).every(([k, want]) => JSON.stringify(config[k]) === JSON.stringify(want)),
  );
  if (!variant) return choice;
  return {
    ...choice,
    definition: { ...choice.definition, name: variant.name ?? choice.definition.name, stages: variant.stages },
  };
}

function named(
  registry: PipelineRegistry,
  name: string,
  loc: SourceLocation | undefined,
  what: string,
): PipelineDefinition {
  const found = registry.get(name);
  if (found) return found;
  const names = registry.names();
  throw new OmniError(
    'OMNI_CONFIG_PIPELINE_UNKNOWN',
    `${what} names pipeline \`${name}\`, which no plugin registers.`,
    {
      ...(loc ? { location: loc } : {}),
      hint: `${didYouMeanPrefix(name, names)}Registered pipelines: ${names.length > 0 ? names.join(', ') : 'none (load a plugin that defines pipelines)'}.`,
      context: { pipeline: name },
    },
  );
}

function byModel(registry: PipelineRegistry, model: string): PipelineChoice | null {
  const dir = resolve(model);
  if (!isDirectory(dir)) {
    // A hub id: upstream's last resort, the longest registry key inside the normalised basename.
    const name = normalise(basename(model));
    const hits = registry.names().filter((k) => name.includes(normalise(k)));
    const best = hits.sort((a, b) => normalise(b).length - normalise(a).length)[0];
    const definition = best === undefined ? undefined : registry.get(best);
    return definition ? { definition, selectedBy: 'model name' } : null;
  }
  const config = readJson(join(dir, 'config.json'));
  const type = stringField(config, 'model_type') ?? stringField(config, 'architecture');
  const typed = type === undefined ? undefined : registry.get(type);
  if (typed) return { definition: typed, selectedBy: 'model type' };
  const className = stringField(readJson(join(dir, 'model_index.json')), '_class_name');
  const diffusers =
    className === undefined ? undefined : registry.values().find((p) => p.diffusers_class_name === className);
  if (diffusers) return { definition: diffusers, selectedBy: 'diffusers class' };
  const archs =
    config && Array.isArray(config['architectures'])
      ? config['architectures'].filter((a): a is string => typeof a === 'string')
      : [];
  const byArch = registry
    .values()
    .find((p) => matchesConfig(p, config) && (p.hf_architectures ?? []).some((a) => archs.includes(a)));
  return byArch ? { definition: byArch, selectedBy: 'architectures' } : null;
}

function matchesConfig(p: PipelineDefinition, config: Record<string, unknown> | undefined): boolean {
  return Object.entries(p.hf_config_match ?? {}).every(
    ([k, v]) => config !== undefined && String(config[k] ?? '') === v,
  );
}

function normalise(s: string): string {
  return s.toLowerCase().replace(/[-_]/g, '');
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A JSON object file, or undefined when it is missing or not an object (upstream skips such files too). */
function readJson(path: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function stringField(obj: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = obj?.[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}
