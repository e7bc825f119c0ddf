/**
 * Front end for the deploy `stages` schema (spec c.3): base_config chain, platform overlay, and the
 * conversion of flat deploy stages to the legacy stage shape, with topology from a built-in
 * pipeline or, failing that, a chain in stage_id order.
 */
import { basename, extname, isAbsolute } from 'node:path';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { SourceLocation } from '../errors.js';
import { loadBaseConfigChain, mergeBaseConfigLayers } from './base-config.js';
import { prepareDeployLayer } from './deploy-layer.js';
import { deployEngineArgs, emptyDeployStage, type DeployStage } from './deploy-stage.js';
import { didYouMeanPrefix } from './did-you-mean.js';
import { applyPlatformOverlay } from './platform-overlay.js';
import { BUILT_IN_PIPELINES, findPipeline, type PipelineStageTopology, type PipelineTopology } from './pipelines.js';
import { deployPipelineWideFields, deployTypedEngineFields } from './schema.js';
import { fromJS, syntheticMap, type SourcedEntry, type SourcedMap } from './sourced.js';
import type { PipelineDraft, StageDraft } from './draft.js';
import type { ReadFile, SourcedDocument } from './load.js';

export interface DeployDraftOptions {
  platform: string;
  readFile: ReadFile;
  /** Extra pipeline topologies (e.g. from plugins); they win over the built-ins. */
  pipelines?: Readonly<Record<string, PipelineTopology>>;
}

const PIPELINE_WIDE = Object.keys(deployPipelineWideFields);
/** Typed fields where null means "unset" (upstream forwards non-null values only). */
const NULL_MEANS_UNSET = new Set([...Object.keys(deployTypedEngineFields), ...PIPELINE_WIDE]);

export async function deployDraft(doc: SourcedDocument, root: SourcedMap, options: DeployDraftOptions): Promise<PipelineDraft> {
  const layers = await loadBaseConfigChain(prepareDeployLayer(doc, root), options.readFile);
  const merged = mergeBaseConfigLayers(layers);
  const warnings: Diagnostic[] = [...merged.warnings];
  const top = merged.top;

  const pipelineEntry = top.entries.get('pipeline');
  const pipelineKey = pipelineEntry?.node.kind === 'scalar' && typeof pipelineEntry.node.value === 'string' ? pipelineEntry.node.value : null;
  // Upstream picks the pipeline from the model type; without a model, the file names stand in
  // (root first, so `my_bagel.yaml` with `base_config: bagel.yaml` still finds `bagel`).
  const fileNames = [...layers].reverse().flatMap((l) => (isAbsolute(l.file) ? [basename(l.file, extname(l.file))] : []));
  const candidates = pipelineKey !== null ? [pipelineKey] : fileNames;
  const extra = options.pipelines ?? {};
  const topology = candidates.map((c) => findPipeline(c, extra)).find((p) => p !== undefined);

  let stages = merged.stages;
  if (topology) {
    for (const t of topology.stages) {
      if (!stages.some((s) => s.stageId === t.stage_id)) stages = [...stages, emptyDeployStage(t.stage_id, merged.stagesLoc)];
    }
  }
  const placed = applyPlatformOverlay(stages, merged.platforms.get(options.platform), options.platform);
  warnings.push(...placed.warnings);
  stages = placed.stages;

  const asyncEntry = top.entries.get('async_chunk');
  const asyncChunk = asyncEntry?.node.kind === 'scalar' && typeof asyncEntry.node.value === 'boolean' ? asyncEntry.node.value : true;
  const ctx: ConvertContext = { top, asyncChunk, asyncEntry };

  let drafts: StageDraft[];
  if (topology) {
    drafts = topology.stages.map((t) => {
      const stage = stages.find((s) => s.stageId === t.stage_id) ?? emptyDeployStage(t.stage_id, merged.stagesLoc);
      return toLegacyStage(stage, t, ctx);
    });
    for (const s of stages) {
      if (!topology.stages.some((t) => t.stage_id === s.stageId)) {
        warnings.push(
          diagnostic(
            'OMNI_WARN_STAGE_NOT_IN_PIPELINE',
            `Stage ${s.stageId} is not part of pipeline \`${topology.name}\` and is ignored.`,
            s.stageIdEntry.keyLoc,
            `Pipeline ${topology.name} has stages ${topology.stages.map((t) => t.stage_id).join(', ')}.`,
          ),
        );
      }
    }
  } else {
    const ordered = [...stages].sort((a, b) => a.stageId - b.stageId);
    drafts = ordered.map((s, i) => {
      const prev = ordered[i - 1];
      return toLegacyStage(s, chainedTopology(s.stageId, prev?.stageId, i === ordered.length - 1), ctx);
    });
    warnings.push(chainedWarning(pipelineKey, pipelineEntry, candidates, extra, merged.stagesLoc));
  }

  return {
    file: doc.file,
    schema: 'deploy',
    topology: topology ? 'registry' : 'chained',
    pipeline: topology?.name ?? pipelineKey,
    asyncChunk,
    top,
    stages: drafts,
    warnings,
  };
}

function chainedTopology(stageId: number, previous: number | undefined, last: boolean): PipelineStageTopology {
  return {
    stage_id: stageId,
    stage_type: 'llm',
    engine_input_source: previous === undefined ? [] : [previous],
    final_output: last,
    is_comprehension: false,
  };
}

function chainedWarning(
  pipelineKey: string | null,
  pipelineEntry: SourcedEntry | undefined,
  candidates: readonly string[],
  extra: Readonly<Record<string, PipelineTopology>>,
  stagesLoc: SourceLocation,
): Diagnostic {
  const known = [...new Set([...Object.keys(BUILT_IN_PIPELINES), ...Object.keys(extra)])];
  const why =
    pipelineKey !== null
      ? `pipeline \`${pipelineKey}\` is not a known pipeline`
      : `no known pipeline matches ${candidates.length > 0 ? candidates.map((c) => `\`${c}\``).join(', ') : 'an inline file'}`;
  const guess = pipelineKey !== null ? didYouMeanPrefix(pipelineKey, known) : '';
  return diagnostic(
    'OMNI_WARN_TOPOLOGY_CHAINED',
    `Deploy file topology: ${why}, so the stages are chained in stage_id order ` +
      '(each stage reads the previous one, all stage_type llm, the last one is the final output).',
    pipelineKey !== null && pipelineEntry ? pipelineEntry.keyLoc : stagesLoc,
    `${guess}Set \`pipeline:\` to one of ${known.join(', ')}, or write the file in the legacy stage_args schema to declare the topology.`,
  );
}

interface ConvertContext {
  top: SourcedMap;
  asyncChunk: boolean;
  asyncEntry: SourcedEntry | undefined;
}

/** Converts a deploy stage to the legacy stage shape (spec c.3 "Conversion to the legacy shape"). */
function toLegacyStage(stage: DeployStage, topo: PipelineStageTopology, ctx: ConvertContext): StageDraft {
  const loc = stage.loc;
  const node = syntheticMap(loc);
  const put = (key: string, entry: SourcedEntry): void => {
    node.entries.set(key, { ...entry, key });
  };
  const synth = (value: unknown): SourcedEntry => ({ key: '', keyLoc: loc, node: fromJS(value, loc) });
  const putAll = (map: SourcedMap, key: string): void => put(key, { key, keyLoc: loc, node: map });

  put('stage_id', stage.stageIdEntry);
  put('stage_type', synth(topo.stage_type));
  const engine = stage.stage.get('engine');
  if (engine) put('engine', engine);

  const runtime = syntheticMap(loc);
  for (const [k, e] of stage.runtime) runtime.entries.set(k, e);
  if (topo.requires_multimodal_data !== undefined && !runtime.entries.has('requires_multimodal_data')) {
    runtime.entries.set('requires_multimodal_data', { ...synth(topo.requires_multimodal_data), key: 'requires_multimodal_data' });
  }
  putAll(runtime, 'runtime');

  // Precedence, lowest first: pipeline defaults ← pipeline-wide fields ← stage fields ← async_chunk
  // ← pipeline-owned keys (model_stage, worker_type).
  const args = syntheticMap(loc);
  const set = (key: string, entry: SourcedEntry): void => {
    args.entries.set(key, { ...entry, key });
  };
  if (topo.model_arch !== undefined) set('model_arch', synth(topo.model_arch));
  if (topo.engine_output_type !== undefined) set('engine_output_type', synth(topo.engine_output_type));
  for (const key of PIPELINE_WIDE) {
    const e = ctx.top.entries.get(key);
    if (e && !isNull(e)) set(key, e);
  }
  for (const [key, e] of deployEngineArgs(stage).entries) {
    if (NULL_MEANS_UNSET.has(key) && isNull(e)) continue;
    set(key, e);
  }
  if (stage.maxBatchSize && !args.entries.has('max_num_seqs') && !isNull(stage.maxBatchSize)) set('max_num_seqs', stage.maxBatchSize);
  set('async_chunk', ctx.asyncEntry ?? synth(ctx.asyncChunk));
  if (topo.model_stage !== undefined) set('model_stage', synth(topo.model_stage));
  if (topo.worker_type !== undefined) set('worker_type', synth(topo.worker_type));
  putAll(args, 'engine_args');

  put('engine_input_source', synth([...topo.engine_input_source]));
  put('final_output', synth(topo.final_output));
  if (topo.final_output_type !== undefined) put('final_output_type', synth(topo.final_output_type));
  put('is_comprehension', synth(topo.is_comprehension));
  for (const key of ['default_sampling_params', 'input_connectors', 'output_connectors']) {
    const e = stage.stage.get(key);
    if (e) put(key, e);
  }
  return { stageId: stage.stageId, node, loc };
}

function isNull(entry: SourcedEntry): boolean {
  return entry.node.kind === 'scalar' && entry.node.value === null;
}
