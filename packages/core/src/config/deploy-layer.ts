/**
 * One deploy file (the root or a `base_config` parent), validated on its own so every error points
 * into the file that has it, with its stages split for merging.
 */
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { OmniError, type SourceLocation } from '../errors.js';
import { deprecationWarnings, DEPLOY_DEPRECATED_KEYS } from './deprecations.js';
import { TOPOLOGY_KEYS } from './deploy-convert.js';
import { splitDeployStage, type DeployStage } from './deploy-stage.js';
import { didYouMeanPrefix, editDistance } from './did-you-mean.js';
import { validateSourced } from './issues.js';
import {
  deployFileSchema,
  deployPipelineWideFields,
  deployTypedEngineFields,
  DEPLOY_STAGE_KEYS,
  PLATFORM_NAMES,
} from './schema.js';
import { entryLocation, locate, type SourcedEntry, type SourcedMap, type SourcedNode } from './sourced.js';
import type { SourcedDocument } from './load.js';

export interface DeployLayer {
  file: string;
  root: SourcedMap;
  baseConfig: { path: string; loc: SourceLocation } | undefined;
  stages: DeployStage[];
  /** The `stages:` entry, if the file has one. */
  stagesEntry: SourcedEntry | undefined;
  /** Platform name → its stages, in file order. */
  platforms: Map<string, DeployStage[]>;
  warnings: Diagnostic[];
}

/** Keys a flat engine field is compared with to catch likely typos (`num_replica`). */
const TYPO_TARGETS = [
  ...DEPLOY_STAGE_KEYS,
  'subtalker_sampling_params',
  ...Object.keys(deployTypedEngineFields),
  ...Object.keys(deployPipelineWideFields),
];
const KNOWN_FLAT = new Set([...TYPO_TARGETS, ...TOPOLOGY_KEYS]);

export function prepareDeployLayer(doc: SourcedDocument, root: SourcedMap): DeployLayer {
  const data = validateSourced(deployFileSchema, root, {
    invalidCode: 'OMNI_CONFIG_INVALID',
    unknownKeyCode: 'OMNI_CONFIG_UNKNOWN_KEY',
  });
  const warnings = [...doc.warnings, ...deprecationWarnings(root, DEPLOY_DEPRECATED_KEYS)];

  const stagesEntry = root.entries.get('stages');
  const stages = splitStages(stagesEntry?.node, ['stages'], root, warnings);

  const platforms = new Map<string, DeployStage[]>();
  const platformsNode = root.entries.get('platforms')?.node;
  if (platformsNode?.kind === 'map') {
    for (const [name, entry] of platformsNode.entries) {
      if (!(PLATFORM_NAMES as readonly string[]).includes(name)) {
        const guess = didYouMeanPrefix(name, PLATFORM_NAMES);
        warnings.push(
          diagnostic(
            'OMNI_WARN_UNKNOWN_PLATFORM',
            `Platform section \`${name}\` matches no platform omnistage runs on; it is never applied.`,
            entry.keyLoc,
            `${guess}Platforms: ${PLATFORM_NAMES.join(', ')}.`,
          ),
        );
      }
      const list = entry.node.kind === 'map' ? entry.node.entries.get('stages')?.node : undefined;
      platforms.set(name, splitStages(list, ['platforms', name, 'stages'], root, warnings));
    }
  }

  const baseEntry = root.entries.get('base_config');
  const baseConfig =
    data.base_config !== undefined && baseEntry ? { path: data.base_config, loc: entryLocation(baseEntry) } : undefined;
  return { file: doc.file, root, baseConfig, stages, stagesEntry, platforms, warnings };
}

function splitStages(
  list: SourcedNode | undefined,
  path: (string | number)[],
  root: SourcedMap,
  warnings: Diagnostic[],
): DeployStage[] {
  if (list?.kind !== 'seq') return [];
  const seen = new Map<number, number>();
  return list.items.map((item, i) => {
    const stage = splitDeployStage(item as SourcedMap); // validated: stage entries are maps
    const prev = seen.get(stage.stageId);
    if (prev !== undefined) {
      throw new OmniError(
        'OMNI_CONFIG_INVALID',
        `Duplicate stage_id ${stage.stageId} in \`${path.join('.')}\` (entries ${prev} and ${i}).`,
        {
          location: locate(root, [...path, i, 'stage_id']),
          related: [locate(root, [...path, prev, 'stage_id'])],
          hint: 'List each stage_id once per stages list; merge the two entries.',
        },
      );
    }
    seen.set(stage.stageId, i);
    for (const [key, entry] of stage.flat) warnings.push(...flatKeyWarnings(key, entry));
    return stage;
  });
}

function flatKeyWarnings(key: string, entry: SourcedEntry): Diagnostic[] {
  if (KNOWN_FLAT.has(key)) return [];
  const limit = key.length >= 8 ? 2 : 1;
  const close = TYPO_TARGETS.filter((t) => editDistance(key, t) <= limit);
  if (close.length === 0) return [];
  return [
    diagnostic(
      'OMNI_WARN_POSSIBLE_TYPO',
      `\`${key}\` is not a deploy stage key, so it is passed to the engine as an engine arg.`,
      entry.keyLoc,
      `Did you mean \`${close[0] ?? ''}\`?`,
    ),
  ];
}
