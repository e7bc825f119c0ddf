/**
 * `loadPipelineConfig`: one entry point for both upstream schemas. The file is parsed with
 * locations, validated strictly, normalised to the legacy stage shape, patched by
 * --stage-overrides, checked across stages and filtered by mode.
 */
import { resolve } from 'node:path';
import { OmniError } from '../errors.js';
import type { PlatformName } from '../planning/types.js';
import { buildStage, buildTopLevel, type TopLevel } from './build.js';
import { deployDraft } from './deploy.js';
import { legacyDraft } from './legacy.js';
import { defaultReadFile, parseSourced, readConfigText, type ReadFile } from './load.js';
import { filterStagesByMode } from './modes.js';
import { checkStageGraph, checkStageReferences } from './references.js';
import { applyStageOverrides } from './stage-overrides.js';
import type { PipelineDraft } from './draft.js';
import { PipelineRegistry } from './pipelines.js';
import { applyStrategyFile } from './strategy.js';
import type { PipelineConfig } from './types.js';

/** A pipeline file by path, or its text (with the path it would have, for messages and base_config). */
export type PipelineSource = string | { text: string; path?: string };

/** How a pipeline file is loaded: platform, mode, stage overrides, file reader. */
export interface LoadPipelineOptions {
  /** Platform whose `platforms:` section applies (deploy files). Default `cuda`. */
  platform?: PlatformName;
  /** Active mode for `modes:` filtering; `text-to-image` when the file has modes and none is given. */
  mode?: string;
  /** Text of `--stage-overrides` (JSON or YAML): `{"<stage_id>": {key: value}}`. */
  stageOverrides?: string;
  /** File reader (default: `fs.readFile` as UTF-8); used for the file and its base_config chain. */
  readFile?: ReadFile;
  /**
   * Registered pipelines that give deploy files their topology: a registry, or a function called
   * once the file's top level is known (so the plugins it names can be loaded first) that returns
   * one. Default: none, so only files that spell out their topology load.
   */
  pipelines?: PipelineRegistry | ((top: TopLevel) => PipelineRegistry | Promise<PipelineRegistry>);
  /** `--pipeline NAME`: selects the pipeline, over the file's `pipeline:` key. */
  pipeline?: string;
  /** `--model`: selects the pipeline by model when no name is given (wins over the file's `model:`). */
  model?: string;
  /** `--strategy-config FILE`: parallel strategy applied to the stages by `model_stage`. */
  strategyConfig?: string;
}

/** The name used for text given without a path. */
export const INLINE_FILE = '<inline>';

/**
 * Loads a pipeline file (legacy `stage_args` or deploy `stages`) into a {@link PipelineConfig}.
 * Throws {@link OmniError} with a `file:line:col` location for every configuration problem;
 * non-fatal findings (deprecated keys, fallbacks) are in `warnings`.
 */
export async function loadPipelineConfig(
  source: PipelineSource,
  options: LoadPipelineOptions = {},
): Promise<PipelineConfig> {
  const readFile = options.readFile ?? defaultReadFile;
  const file =
    typeof source === 'string' ? resolve(source) : source.path !== undefined ? resolve(source.path) : INLINE_FILE;
  const text = typeof source === 'string' ? await readConfigText(file, readFile) : source.text;
  const doc = parseSourced(text, file);
  const root = doc.root;
  if (root.kind !== 'map') {
    const got = root.kind === 'seq' ? 'a list' : 'a single value or empty';
    throw new OmniError('OMNI_CONFIG_INVALID', `${file} must be a map of settings, but it is ${got}.`, {
      location: root.loc,
      hint: 'Start the file with `stage_args:` (legacy schema) or `stages:` (deploy schema).',
    });
  }

  // Upstream rule (`load_and_resolve_stage_configs`): `stages` without `stage_args` is a deploy file. A deploy overlay may
  // consist of `base_config` alone (bagel_think.yaml).
  const isDeploy = !root.entries.has('stage_args') && (root.entries.has('stages') || root.entries.has('base_config'));
  if (!isDeploy && !root.entries.has('stage_args')) {
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `${file} declares no stages: it has neither \`stage_args\` nor \`stages\`.`,
      {
        location: root.loc,
        hint: 'List the stages under `stage_args:` (legacy schema) or `stages:` (deploy schema).',
      },
    );
  }
  const draft: PipelineDraft = isDeploy
    ? await deployDraft(doc, root, {
        platform: options.platform ?? 'cuda',
        readFile,
        pipelines: async (top) => registryFor(options.pipelines, buildTopLevel(top, file)),
        pipeline: options.pipeline,
        model: options.model,
      })
    : legacyDraft(doc, root);
  if (draft.stages.length === 0) {
    throw new OmniError('OMNI_CONFIG_INVALID', `${file} declares no stages.`, {
      location: root.entries.get('stages')?.keyLoc ?? root.loc,
      hint: 'Add at least one stage with a `stage_id:`.',
    });
  }

  // Upstream order: topology + deploy merge, then the strategy overlay, then --stage-overrides.
  const strategy =
    options.strategyConfig === undefined
      ? undefined
      : await applyStrategyFile(options.strategyConfig, draft.stages, readFile);
  const stageDrafts =
    options.stageOverrides !== undefined
      ? applyStageOverrides(strategy?.stages ?? draft.stages, options.stageOverrides)
      : (strategy?.stages ?? draft.stages);
  const top = buildTopLevel(draft.top, file);
  const all = stageDrafts.map((d, i) => buildStage(d, i, top.min_ready));
  checkStageReferences(all, top);
  checkStageGraph(all);
  const { stages, warnings: modeWarnings } = filterStagesByMode(all, draft.top.entries.get('modes'), options.mode);

  return {
    file,
    schema: draft.schema,
    model: top.model,
    pipeline: draft.pipeline,
    pipeline_selected_by: draft.pipelineSelectedBy,
    topology: draft.topology,
    session_mode: top.session_mode,
    duplex_session: top.duplex_session,
    ...(strategy?.balance ? { balance: strategy.balance } : {}),
    ...(top.liveness === undefined ? {} : { liveness: top.liveness }),
    async_chunk: draft.asyncChunk,
    connectors: top.connectors,
    edges: top.edges,
    stages,
    plugins: top.plugins,
    warnings: [...draft.warnings, ...(strategy?.warnings ?? []), ...modeWarnings],
    locations: top.locations,
  };
}

async function registryFor(option: LoadPipelineOptions['pipelines'], top: TopLevel): Promise<PipelineRegistry> {
  if (option === undefined) return new PipelineRegistry();
  return option instanceof PipelineRegistry ? option : await option(top);
}
