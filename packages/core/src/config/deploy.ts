/**
 * Front end for the deploy `stages` schema (upstream `vllm_omni/deploy/<model>.yaml` and its pipeline registry): base_config chain, platform overlay, the
 * pipeline lookup, and the merge of the deploy stages into the pipeline's topology.
 */
import { basename, extname } from 'node:path';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { OmniError, type SourceLocation } from '../errors.js';
import { loadBaseConfigChain, mergeBaseConfigLayers, type MergedDeploy } from './base-config.js';
import { prepareDeployLayer } from './deploy-layer.js';
import {
  fileTopology,
  registryTopology,
  spellsTopology,
  toLegacyStage,
  TOPOLOGY_KEYS,
  type ConvertContext,
} from './deploy-convert.js';
import { emptyDeployStage, type DeployStage } from './deploy-stage.js';
import { suggestions } from './did-you-mean.js';
import { applyPlatformOverlay } from './platform-overlay.js';
import { pipelineByFileName } from './pipeline-by-file-name.js';
import { choosePipeline, type PipelineChoice } from './pipeline-lookup.js';
import { entryLocation, toJS, type SourcedEntry, type SourcedMap } from './sourced.js';
import type { PipelineDraft, StageDraft } from './draft.js';
import type { ReadFile, SourcedDocument } from './load.js';
import type { PipelineRegistry } from './pipelines.js';

export interface DeployDraftOptions {
  platform: string;
  readFile: ReadFile;
  /** Registered pipelines; resolved once the top level (and so `plugins:`) is known. */
  pipelines: (top: SourcedMap) => Promise<PipelineRegistry>;
  /** `--pipeline NAME`. */
  pipeline?: string | undefined;
  /** `--model`: wins over the file's `model:` for the lookup. */
  model?: string | undefined;
}

export async function deployDraft(
  doc: SourcedDocument,
  root: SourcedMap,
  options: DeployDraftOptions,
): Promise<PipelineDraft> {
  const layers = await loadBaseConfigChain(prepareDeployLayer(doc, root), options.readFile);
  const merged = mergeBaseConfigLayers(layers);
  const warnings: Diagnostic[] = [...merged.warnings];
  const top = merged.top;
  const registry = await options.pipelines(top);
  const choice = pipelineChoice(top, registry, options) ?? namedByFile(doc.file, merged, registry, warnings);

  let stages = merged.stages;
  if (choice) {
    checkStagesInPipeline(stages, choice);
    warnings.push(...stages.flatMap((s) => topologyKeyWarnings(s, choice)));
    for (const t of choice.definition.stages) {
      if (!stages.some((s) => s.stageId === t.stage_id))
        stages = [...stages, emptyDeployStage(t.stage_id, merged.stagesLoc)];
    }
  } else if (!stages.some(spellsTopology)) {
    throw unresolved(doc.file, merged, registry.names(), options.model ?? stringValue(top.entries.get('model')));
  }
  const placed = applyPlatformOverlay(stages, merged.platforms.get(options.platform), options.platform);
  warnings.push(...placed.warnings);
  stages = placed.stages;

  const asyncEntry = top.entries.get('async_chunk');
  const declaredAsync =
    asyncEntry?.node.kind === 'scalar' && typeof asyncEntry.node.value === 'boolean' ? asyncEntry.node.value : true;
  // Upstream forces async_chunk off for single-stage pipelines (nothing to stream to).
  const asyncChunk = choice && choice.definition.stages.length <= 1 ? false : declaredAsync;
  if (choice && asyncChunk) checkAsyncChunk(choice, asyncEntry, merged.stagesLoc);
  const ctx: ConvertContext = {
    top,
    asyncChunk,
    asyncEntry: asyncChunk === declaredAsync ? asyncEntry : undefined,
    pipelineEngineArgs: duplexEngineArgs(top),
  };

  return {
    file: doc.file,
    schema: 'deploy',
    topology: choice ? 'registry' : 'file',
    pipeline: choice?.definition.name ?? null,
    pipelineSelectedBy: choice?.selectedBy ?? null,
    asyncChunk,
    top,
    stages: stageDrafts(stages, choice, ctx, merged.stagesLoc),
    warnings,
  };
}

/** The registered pipeline the file runs: `--pipeline`, else its `pipeline:` key, else its model; null when none. */
function pipelineChoice(
  top: SourcedMap,
  registry: PipelineRegistry,
  options: DeployDraftOptions,
): PipelineChoice | null {
  const keyEntry = top.entries.get('pipeline');
  const key = stringValue(keyEntry);
  const fileModel = stringValue(top.entries.get('model'));
  return choosePipeline({
    registry,
    flag: options.pipeline,
    key: key !== undefined && keyEntry ? { name: key, loc: entryLocation(keyEntry) } : undefined,
    model:
      options.model !== undefined
        ? { value: options.model }
        : fileModel !== undefined
          ? { value: fileModel }
          : undefined,
  });
}

/** The legacy-shaped stages: in the registered pipeline's order with its topology, else the file's own, by id. */
function stageDrafts(
  stages: readonly DeployStage[],
  choice: PipelineChoice | null,
  ctx: ConvertContext,
  stagesLoc: SourceLocation,
): StageDraft[] {
  if (choice) {
    return choice.definition.stages.map((t) => {
      const stage = stages.find((s) => s.stageId === t.stage_id) ?? emptyDeployStage(t.stage_id, stagesLoc);
      return toLegacyStage(stage, registryTopology(t, ctx.asyncChunk, stage.loc), ctx);
    });
  }
  return [...stages]
    .sort((a, b) => a.stageId - b.stageId)
    .map((s) => {
      const own = fileTopology(s);
      return toLegacyStage(own.stage, own.topology, ctx);
    });
}

/** The pipeline the file's name selects (with its notice), only where the file spells out no topology itself. */
function namedByFile(
  file: string,
  merged: MergedDeploy,
  registry: PipelineRegistry,
  warnings: Diagnostic[],
): PipelineChoice | null {
  if (merged.stages.some(spellsTopology)) return null;
  const found = pipelineByFileName(file, registry, merged.stagesLoc);
  if (found) warnings.push(found.notice);
  return found?.choice ?? null;
}

function stringValue(entry: SourcedEntry | undefined): string | undefined {
  return entry?.node.kind === 'scalar' && typeof entry.node.value === 'string' ? entry.node.value : undefined;
}

/** `duplex_max_sessions` for every stage of a duplex session (upstream merge). */
function duplexEngineArgs(top: SourcedMap): Record<string, unknown> {
  if (stringValue(top.entries.get('session_mode')) !== 'duplex') return {};
  const session = top.entries.get('duplex_session');
  const max = session ? (toJS(session.node) as Record<string, unknown> | null)?.['max_sessions'] : undefined;
  return typeof max === 'number' ? { duplex_max_sessions: max } : {};
}

/** With a registered pipeline, topology keys in a stage are engine args (upstream `engine_extras`). */
function topologyKeyWarnings(stage: DeployStage, choice: PipelineChoice): Diagnostic[] {
  return TOPOLOGY_KEYS.flatMap((key) => {
    const entry = stage.flat.get(key);
    if (!entry) return [];
    return [
      diagnostic(
        'OMNI_WARN_DEPLOY_TOPOLOGY_KEY',
        `\`${key}\` in stage ${stage.stageId} is passed to the engine as an engine arg; pipeline \`${choice.definition.name}\` decides the topology.`,
        entry.keyLoc,
        'To spell out the topology yourself, drop `pipeline:` and give every stage stage_type, engine_input_source and final_output.',
      ),
    ];
  });
}

/** Upstream's `merge_pipeline_deploy` raises when chunks should stream but no stage can send them. */
function checkAsyncChunk(choice: PipelineChoice, entry: SourcedEntry | undefined, stagesLoc: SourceLocation): void {
  const def = choice.definition;
  if (def.streams_chunks !== false || !def.stages.some((s) => s.engine_input_source.length > 0)) return;
  throw new OmniError(
    'OMNI_CONFIG_INVALID',
    `Pipeline \`${def.name}\` has async_chunk ${entry ? 'true' : 'true (the deploy default)'}, but no stage of it declares an async-chunk next-stage processor.`,
    {
      location: entry ? entryLocation(entry) : stagesLoc,
      hint: 'Set `async_chunk: false` at the top of the deploy file.',
      context: { pipeline: def.name },
    },
  );
}

/** Upstream silently drops deploy stages its pipeline lacks; a typo'd id would then do nothing. */
function checkStagesInPipeline(stages: readonly DeployStage[], choice: PipelineChoice): void {
  const ids = choice.definition.stages.map((s) => s.stage_id);
  for (const s of stages) {
    if (ids.includes(s.stageId)) continue;
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `Stage ${s.stageId} is not a stage of pipeline \`${choice.definition.name}\` (selected by ${choice.selectedBy}).`,
      {
        location: entryLocation(s.stageIdEntry),
        hint: `Pipeline ${choice.definition.name} has stages ${ids.join(', ')}; fix the stage_id or remove the entry.`,
        context: { stage_id: s.stageId, pipeline: choice.definition.name },
      },
    );
  }
}

function unresolved(
  file: string,
  merged: MergedDeploy,
  names: readonly string[],
  model: string | undefined,
): OmniError {
  const stem = basename(file, extname(file));
  const near = [...(names.includes(stem) ? [stem] : []), ...suggestions(stem, names, 3)].slice(0, 3);
  const guess = near.length > 0 ? `Nearest pipelines: ${near.join(', ')}. ` : '';
  const why =
    model !== undefined ? `model \`${model}\` matches no registered pipeline` : 'no model is given to select one';
  const loc: SourceLocation = merged.stagesLoc;
  return new OmniError(
    'OMNI_CONFIG_PIPELINE_UNRESOLVED',
    `${basename(file)} has no \`pipeline:\` key and ${why}, so its stages have no topology (a deploy file carries none).`,
    {
      location: loc,
      hint:
        `${guess}Add \`pipeline: NAME\` to the file, pass --pipeline NAME, or pass --model with a checkpoint directory whose ` +
        'config.json names the model type; or spell out the topology per stage (stage_type, engine_input_source, final_output).',
      context: { file },
    },
  );
}
