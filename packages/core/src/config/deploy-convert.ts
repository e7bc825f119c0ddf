/**
 * Topology + deploy merge (upstream `merge_pipeline_deploy`, fixtures SOURCES.md §3): a deploy stage
 * (base_config and platforms already applied) becomes a legacy-shaped stage, its topology taken
 * from a registered pipeline stage or spelt out in the stage itself (our extension).
 */
import type { SourceLocation } from '../errors.js';
import { deployEngineArgs, type DeployStage } from './deploy-stage.js';
import { deployPipelineWideFields, deployTypedEngineFields } from './schema.js';
import { deepMerge, fromJS, syntheticMap, type SourcedEntry, type SourcedMap } from './sourced.js';
import type { StageDraft } from './draft.js';
import type { PipelineStageDefinition } from './pipelines.js';

/** Stage keys that make up topology: written in the legacy stage, never sent as engine args. */
export const TOPOLOGY_KEYS = [
  'stage_type',
  'engine_input_source',
  'final_output',
  'final_output_type',
  'is_comprehension',
  'custom_process_input_func',
  'prompt_expand_func',
  'cfg_kv_collect_func',
] as const;

/** One stage's topology, whichever source it came from. */
export interface StageTopology {
  /** Topology keys of the legacy stage, with the location that set them. */
  entries: Map<string, SourcedEntry>;
  /** Engine-arg defaults (the deploy file wins). */
  engineDefaults: Readonly<Record<string, unknown>>;
  /** Engine args the pipeline owns (they win over the deploy file). */
  pinned: Readonly<Record<string, unknown>>;
  samplingConstraints: Readonly<Record<string, unknown>> | undefined;
  requiresMultimodal: boolean | undefined;
  extras: Readonly<Record<string, unknown>>;
}

/** The topology of a registered pipeline stage, with the processors `async_chunk` selects. */
export function registryTopology(
  def: PipelineStageDefinition,
  asyncChunk: boolean,
  loc: SourceLocation,
): StageTopology {
  const entries = new Map<string, SourcedEntry>();
  const set = (key: string, value: unknown): void => {
    if (value !== undefined && value !== null) entries.set(key, { key, keyLoc: loc, node: fromJS(value, loc) });
  };
  const procs = def.processors ? (asyncChunk ? def.processors.async_chunk : def.processors.sync) : undefined;
  set('stage_type', def.stage_type);
  set('engine_input_source', [...def.engine_input_source]);
  set('final_output', def.final_output);
  set('final_output_type', def.final_output_type);
  set('is_comprehension', def.is_comprehension ?? false);
  set('custom_process_input_func', procs?.custom_process_input_func);
  set('prompt_expand_func', def.prompt_expand_func);
  set('cfg_kv_collect_func', def.cfg_kv_collect_func);
  const next = procs?.custom_process_next_stage_input_func;
  return {
    entries,
    engineDefaults: { ...def.engine_args, ...(next ? { custom_process_next_stage_input_func: next } : {}) },
    pinned: { model_stage: def.model_stage, ...def.pinned_engine_args },
    samplingConstraints: def.sampling_constraints,
    requiresMultimodal: def.requires_multimodal_data,
    extras: { ...def.extras },
  };
}

/** Whether a deploy stage spells out its own topology (our extension: then no registry entry is needed). */
export function spellsTopology(stage: DeployStage): boolean {
  return ['stage_type', 'engine_input_source', 'final_output'].some((k) => stage.flat.has(k));
}

/** The topology a deploy stage spells out; its keys leave the engine args. */
export function fileTopology(stage: DeployStage): { stage: DeployStage; topology: StageTopology } {
  const entries = new Map<string, SourcedEntry>();
  const flat = new Map(stage.flat);
  for (const key of TOPOLOGY_KEYS) {
    const e = flat.get(key);
    if (e) entries.set(key, e);
    flat.delete(key);
  }
  const topology = {
    entries,
    engineDefaults: {},
    pinned: {},
    samplingConstraints: undefined,
    requiresMultimodal: undefined,
    extras: {},
  };
  return { stage: { ...stage, flat }, topology };
}

const PIPELINE_WIDE = Object.keys(deployPipelineWideFields);
/** Typed fields where null means "unset" (upstream forwards non-null values only). */
const NULL_MEANS_UNSET = new Set([...Object.keys(deployTypedEngineFields), ...PIPELINE_WIDE]);

export interface ConvertContext {
  top: SourcedMap;
  asyncChunk: boolean;
  asyncEntry: SourcedEntry | undefined;
  /** Engine args every stage gets from top-level keys (`duplex_max_sessions`). */
  pipelineEngineArgs: Readonly<Record<string, unknown>>;
}

/** Converts a deploy stage to the legacy stage shape (as upstream converts deploy stages before `stage_init_utils` sees them). */
export function toLegacyStage(stage: DeployStage, topo: StageTopology, ctx: ConvertContext): StageDraft {
  const loc = stage.loc;
  const node = syntheticMap(loc);
  const put = (key: string, entry: SourcedEntry): void => {
    node.entries.set(key, { ...entry, key });
  };
  const synth = (value: unknown): SourcedEntry => ({ key: '', keyLoc: loc, node: fromJS(value, loc) });

  put('stage_id', stage.stageIdEntry);
  const engine = stage.stage.get('engine');
  if (engine) put('engine', engine);

  const runtime = syntheticMap(loc);
  for (const [k, e] of stage.runtime) runtime.entries.set(k, e);
  if (topo.requiresMultimodal !== undefined && !runtime.entries.has('requires_multimodal_data')) {
    runtime.entries.set('requires_multimodal_data', {
      ...synth(topo.requiresMultimodal),
      key: 'requires_multimodal_data',
    });
  }
  put('runtime', { key: 'runtime', keyLoc: loc, node: runtime });
  put('engine_args', { key: 'engine_args', keyLoc: loc, node: engineArgs(stage, topo, ctx, synth) });
  for (const [key, e] of topo.entries) put(key, e);

  const sampling = stage.stage.get('default_sampling_params');
  if (topo.samplingConstraints && Object.keys(topo.samplingConstraints).length > 0) {
    const constraints = fromJS(topo.samplingConstraints, loc);
    put(
      'default_sampling_params',
      sampling ? { ...sampling, node: deepMerge(sampling.node, constraints) } : synth(topo.samplingConstraints),
    );
  } else if (sampling) put('default_sampling_params', sampling);
  for (const key of ['input_connectors', 'output_connectors', 'default_pooling_params']) {
    const e = stage.stage.get(key);
    if (e) put(key, e);
  }
  return { stageId: stage.stageId, node, loc, extras: { ...topo.extras } };
}

/**
 * Precedence, lowest first: pipeline defaults ← top-level pipeline args ← pipeline-wide fields ←
 * stage fields ← async_chunk ← pipeline-owned keys (model_stage, worker_type).
 */
function engineArgs(
  stage: DeployStage,
  topo: StageTopology,
  ctx: ConvertContext,
  synth: (v: unknown) => SourcedEntry,
): SourcedMap {
  const args = syntheticMap(stage.loc);
  const set = (key: string, entry: SourcedEntry): void => {
    args.entries.set(key, { ...entry, key });
  };
  for (const [k, v] of Object.entries(topo.engineDefaults)) set(k, synth(v));
  for (const [k, v] of Object.entries(ctx.pipelineEngineArgs)) set(k, synth(v));
  for (const key of PIPELINE_WIDE) {
    const e = ctx.top.entries.get(key);
    if (e && !isNull(e)) set(key, e);
  }
  for (const [key, e] of deployEngineArgs(stage).entries) {
    if (NULL_MEANS_UNSET.has(key) && isNull(e)) continue;
    set(key, e);
  }
  if (stage.maxBatchSize && !args.entries.has('max_num_seqs') && !isNull(stage.maxBatchSize))
    set('max_num_seqs', stage.maxBatchSize);
  set('async_chunk', ctx.asyncEntry ?? synth(ctx.asyncChunk));
  for (const [k, v] of Object.entries(topo.pinned)) set(k, synth(v));
  return args;
}

function isNull(entry: SourcedEntry): boolean {
  return entry.node.kind === 'scalar' && entry.node.value === null;
}
