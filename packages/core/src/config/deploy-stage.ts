/**
 * One stage of a deploy file (upstream `vllm_omni/deploy/<model>.yaml`), split by where each key ends up, plus the two merge rules
 * upstream applies to such stages: `base_config` inheritance and `platforms` overlays.
 */
import type { SourceLocation } from '../errors.js';
import { DEPLOY_STAGE_KEYS } from './schema.js';
import { deepMerge, syntheticMap, type SourcedEntry, type SourcedMap } from './sourced.js';

/** Keys of the nested `runtime:` block that land in `StageConfig.runtime`. */
const RUNTIME_KEYS = new Set([
  'devices',
  'num_replicas',
  'min_ready',
  'env',
  'restart',
  'max_inflight_per_replica',
  'process',
  'requires_multimodal_data',
]);
/** Stage-level keys kept on the stage (not engine args, not runtime). */
const STAGE_KEYS = new Set([
  'engine',
  'input_connectors',
  'output_connectors',
  'default_sampling_params',
  'default_pooling_params',
]);
const STRUCTURAL = new Set<string>(DEPLOY_STAGE_KEYS);

export interface DeployStage {
  stageId: number;
  /** The stage's map in the last file that mentioned it. */
  loc: SourceLocation;
  stageIdEntry: SourcedEntry;
  /** `devices`, `num_replicas`, `env`, `restart` (flat or nested; nested wins), `process`, `requires_multimodal_data`. */
  runtime: Map<string, SourcedEntry>;
  /** `engine`, `input_connectors`, `output_connectors`, `default_sampling_params`, `default_pooling_params`. */
  stage: Map<string, SourcedEntry>;
  /** Flat engine fields (typed, pipeline-wide and unknown keys, `subtalker_sampling_params`). */
  flat: Map<string, SourcedEntry>;
  /** The nested `engine_args:` block, if any. */
  nested: SourcedMap | undefined;
  /** Deprecated `runtime.max_batch_size`, migrated to `max_num_seqs` by the conversion. */
  maxBatchSize: SourcedEntry | undefined;
}

/** Splits a validated deploy stage map. */
export function splitDeployStage(node: SourcedMap): DeployStage {
  const stageIdEntry = node.entries.get('stage_id');
  const stageId = stageIdEntry?.node.kind === 'scalar' ? Number(stageIdEntry.node.value) : NaN;
  if (!stageIdEntry || !Number.isInteger(stageId)) throw new Error('splitDeployStage: stage_id was not validated');
  const out: DeployStage = {
    stageId,
    loc: node.loc,
    stageIdEntry,
    runtime: new Map(),
    stage: new Map(),
    flat: new Map(),
    nested: undefined,
    maxBatchSize: undefined,
  };
  for (const [key, entry] of node.entries) {
    if (key === 'stage_id') continue;
    if (key === 'runtime') continue;
    if (key === 'engine_args') {
      if (entry.node.kind === 'map') out.nested = entry.node;
    } else if (RUNTIME_KEYS.has(key) && STRUCTURAL.has(key)) out.runtime.set(key, entry);
    else if (STAGE_KEYS.has(key)) out.stage.set(key, entry);
    else out.flat.set(key, entry);
  }
  // The nested runtime block has priority over the flat keys (upstream's rule).
  const runtime = node.entries.get('runtime')?.node;
  if (runtime?.kind === 'map') {
    for (const [key, entry] of runtime.entries) {
      if (key === 'max_batch_size') out.maxBatchSize = entry;
      else out.runtime.set(key, entry);
    }
  }
  return out;
}

/** Keys deep-merged by both merge rules; every other key is replaced. */
const DEEP_STAGE_KEYS = new Set(['default_sampling_params', 'default_pooling_params']);
const DEEP_FLAT_KEYS = new Set(['subtalker_sampling_params']);

/**
 * `base_config` rule: the overlay's keys replace the base's, except `default_sampling_params`, `default_pooling_params`,
 * `subtalker_sampling_params` and the `engine_args` block, which are deep-merged (an overlay
 * `env` or `parallel_config` replaces the base one).
 */
export function inheritDeployStage(base: DeployStage, overlay: DeployStage): DeployStage {
  return {
    stageId: base.stageId,
    loc: overlay.loc,
    stageIdEntry: overlay.stageIdEntry,
    runtime: mergeEntries(base.runtime, overlay.runtime, new Set()),
    stage: mergeEntries(base.stage, overlay.stage, DEEP_STAGE_KEYS),
    flat: mergeEntries(base.flat, overlay.flat, DEEP_FLAT_KEYS),
    nested: mergeNested(base.nested, overlay.nested),
    maxBatchSize: overlay.maxBatchSize ?? base.maxBatchSize,
  };
}

/**
 * `platforms` rule: like {@link inheritDeployStage}, except that `env` is dict-merged (platform
 * keys win). The stage keeps its own location: the platform section only patches it.
 */
export function overlayPlatformStage(base: DeployStage, platform: DeployStage): DeployStage {
  return {
    ...inheritDeployStage(base, platform),
    loc: base.loc,
    stageIdEntry: base.stageIdEntry,
    runtime: mergeEntries(base.runtime, platform.runtime, new Set(['env'])),
  };
}

/** A deploy stage that only exists in a platform section or pipeline: empty, at `loc`. */
export function emptyDeployStage(stageId: number, loc: SourceLocation): DeployStage {
  return {
    stageId,
    loc,
    stageIdEntry: { key: 'stage_id', keyLoc: loc, node: { kind: 'scalar', value: stageId, loc, synthetic: true } },
    runtime: new Map(),
    stage: new Map(),
    flat: new Map(),
    nested: undefined,
    maxBatchSize: undefined,
  };
}

/** The stage's engine args: flat fields with the nested block deep-merged over them (block wins). */
export function deployEngineArgs(stage: DeployStage): SourcedMap {
  const flat = syntheticMap(stage.loc);
  for (const [k, e] of stage.flat) flat.entries.set(k, e);
  const merged = stage.nested ? deepMerge(flat, stage.nested) : flat;
  // The merged map is the loader's construct, not the user's `engine_args:` block.
  return merged.kind === 'map' ? { ...merged, loc: stage.loc, synthetic: true } : flat;
}

function mergeEntries(
  base: Map<string, SourcedEntry>,
  overlay: Map<string, SourcedEntry>,
  deep: Set<string>,
): Map<string, SourcedEntry> {
  const out = new Map(base);
  for (const [k, e] of overlay) {
    const prev = out.get(k);
    out.set(k, prev && deep.has(k) ? { ...e, node: deepMerge(prev.node, e.node) } : e);
  }
  return out;
}

function mergeNested(base: SourcedMap | undefined, overlay: SourcedMap | undefined): SourcedMap | undefined {
  if (!base || !overlay) return overlay ?? base;
  const merged = deepMerge(base, overlay);
  return merged.kind === 'map' ? merged : overlay;
}
