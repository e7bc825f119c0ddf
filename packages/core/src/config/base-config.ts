/**
 * `base_config` inheritance of deploy files (upstream's merge rules for `vllm_omni/deploy/<model>.yaml`), with the cycle detection
 * upstream lacks.
 */
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import type { Diagnostic } from '../diagnostics.js';
import { OmniError, type SourceLocation } from '../errors.js';
import { prepareDeployLayer, type DeployLayer } from './deploy-layer.js';
import { inheritDeployStage, type DeployStage } from './deploy-stage.js';
import { parseSourced, readConfigText, type ReadFile } from './load.js';
import { syntheticMap, type SourcedMap } from './sourced.js';

/**
 * Follows `base_config` from `root` to the outermost parent. Returns the layers base first, root
 * last. Paths are relative to the directory of the file that names them (the current directory for
 * inline text).
 */
export async function loadBaseConfigChain(root: DeployLayer, readFile: ReadFile): Promise<DeployLayer[]> {
  const chain: DeployLayer[] = [root];
  let cur = root;
  while (cur.baseConfig) {
    const { path, loc } = cur.baseConfig;
    const dir = isAbsolute(cur.file) ? dirname(cur.file) : process.cwd();
    const target = resolve(dir, path);
    const again = chain.findIndex((l) => l.file === target);
    if (again >= 0) {
      const names = [...chain.map((l) => l.file), target].map((f) => basename(f));
      throw new OmniError('OMNI_CONFIG_BASE_CYCLE', `base_config files include each other: ${names.join(' → ')}.`, {
        location: loc,
        related: chain.slice(again, -1).flatMap((l) => (l.baseConfig ? [l.baseConfig.loc] : [])),
        hint: `Remove base_config from one of these files; ${basename(target)} cannot inherit from itself.`,
        context: { chain: [...chain.map((l) => l.file), target] },
      });
    }
    const text = await readConfigText(target, readFile, loc);
    const doc = parseSourced(text, target);
    if (doc.root.kind !== 'map' || doc.root.entries.has('stage_args') || !isDeployShaped(doc.root)) {
      throw new OmniError(
        'OMNI_CONFIG_INVALID',
        `base_config ${path} is not a deploy file (a map with \`stages:\` or \`base_config:\`).`,
        {
          location: loc,
          hint: 'base_config must name a deploy-schema file; legacy stage_args files cannot be inherited.',
        },
      );
    }
    const layer = prepareDeployLayer(doc, doc.root);
    chain.push(layer);
    cur = layer;
  }
  return chain.reverse();
}

function isDeployShaped(root: SourcedMap): boolean {
  return root.entries.has('stages') || root.entries.has('base_config');
}

/** The deploy configuration after all `base_config` layers are merged. */
export interface MergedDeploy {
  /** Top-level keys except `stages`, `platforms`, `base_config`; a later layer's value replaces. */
  top: SourcedMap;
  /** Stages merged by stage_id, base order first, new ids appended. */
  stages: DeployStage[];
  /** Where a stage the file does not list should point: the last `stages:` key, else the root file. */
  stagesLoc: SourceLocation;
  /** Per platform, stages merged by stage_id the same way. */
  platforms: Map<string, DeployStage[]>;
  warnings: Diagnostic[];
}

/** Merges layers (base first). */
export function mergeBaseConfigLayers(layers: readonly DeployLayer[]): MergedDeploy {
  const last = layers[layers.length - 1];
  const top = syntheticMap({ file: last?.file ?? '<inline>', line: 1, col: 1 });
  let stages: DeployStage[] = [];
  const platforms = new Map<string, DeployStage[]>();
  let stagesLoc: SourceLocation = top.loc;
  const warnings: Diagnostic[] = [];
  for (const layer of layers) {
    for (const [key, entry] of layer.root.entries) {
      if (key !== 'stages' && key !== 'platforms' && key !== 'base_config') top.entries.set(key, entry);
    }
    stages = mergeById(stages, layer.stages);
    for (const [name, list] of layer.platforms) platforms.set(name, mergeById(platforms.get(name) ?? [], list));
    if (layer.stagesEntry) stagesLoc = layer.stagesEntry.keyLoc;
    warnings.push(...layer.warnings);
  }
  return { top, stages, stagesLoc, platforms, warnings };
}

function mergeById(base: readonly DeployStage[], overlay: readonly DeployStage[]): DeployStage[] {
  const out = [...base];
  for (const stage of overlay) {
    const i = out.findIndex((s) => s.stageId === stage.stageId);
    const prev = out[i];
    if (prev) out[i] = inheritDeployStage(prev, stage);
    else out.push(stage);
  }
  return out;
}
