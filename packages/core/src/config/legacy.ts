/**
 * Front end for the legacy `stage_args` schema (upstream's `stage_configs/<model>.yaml` files): validation, deprecated keys, duplicate
 * ids, and the top-level `async_chunk` copy into stages.
 */
import { OmniError } from '../errors.js';
import { deprecationWarnings, LEGACY_DEPRECATED_KEYS } from './deprecations.js';
import { validateSourced } from './issues.js';
import { legacyFileSchema } from './schema.js';
import {
  entryLocation,
  locate,
  syntheticMap,
  withEntries,
  withoutKeys,
  type SourcedEntry,
  type SourcedMap,
} from './sourced.js';
import type { PipelineDraft, StageDraft } from './draft.js';
import type { SourcedDocument } from './load.js';

/** Legacy top-level keys and the normalised top-level name they map to. */
const TOP_KEYS: Readonly<Record<string, readonly (string | number)[]>> = {
  connectors: ['runtime', 'connectors'],
  edges: ['runtime', 'edges'],
  min_ready: ['runtime', 'min_ready'],
  runtime: ['runtime'],
  modes: ['modes'],
  model: ['model'],
  plugins: ['plugins'],
  async_chunk: ['async_chunk'],
};

export function legacyDraft(doc: SourcedDocument, root: SourcedMap): PipelineDraft {
  const data = validateSourced(legacyFileSchema, root, {
    invalidCode: 'OMNI_CONFIG_INVALID',
    unknownKeyCode: 'OMNI_CONFIG_UNKNOWN_KEY',
  });
  const warnings = [...doc.warnings, ...deprecationWarnings(root, LEGACY_DEPRECATED_KEYS)];

  const stageList = root.entries.get('stage_args')?.node;
  const stageNodes = stageList?.kind === 'seq' ? stageList.items : [];
  const seen = new Map<number, number>();
  data.stage_args.forEach((stage, i) => {
    const prev = seen.get(stage.stage_id);
    if (prev !== undefined) {
      throw new OmniError(
        'OMNI_CONFIG_INVALID',
        `Duplicate stage_id ${stage.stage_id}: stage_args[${i}] reuses the id of stage_args[${prev}].`,
        {
          location: locate(root, ['stage_args', i, 'stage_id']),
          related: [locate(root, ['stage_args', prev, 'stage_id'])],
          hint: 'Give every stage a unique stage_id.',
        },
      );
    }
    seen.set(stage.stage_id, i);
  });

  const asyncEntry = root.entries.get('async_chunk');
  const asyncChunk = data.async_chunk ?? false;
  const stages = data.stage_args.map((stage, i): StageDraft => {
    let node = stageNodes[i] as SourcedMap; // validated: every item is a map
    const runtime = node.entries.get('runtime');
    if (runtime?.node.kind === 'map' && runtime.node.entries.has('max_batch_size')) {
      // Ignored upstream (#1851); dropped so nothing downstream mistakes it for a setting.
      node = withEntries(node, { ...runtime, node: withoutKeys(runtime.node, ['max_batch_size']) });
    }
    // Upstream copies the top-level flag into non-diffusion stages that have a runtime block,
    // overriding their own value (upstream reads the global flag from stage 0 only).
    if (runtime !== undefined && (stage.stage_type ?? 'llm') !== 'diffusion') {
      node = withAsyncChunk(node, asyncChunk, asyncEntry);
    }
    return { stageId: stage.stage_id, node, loc: node.loc };
  });

  const top = syntheticMap({ file: doc.file, line: 1, col: 1 });
  for (const [name, path] of Object.entries(TOP_KEYS)) {
    let cur: SourcedMap | undefined = root;
    let entry: SourcedEntry | undefined;
    for (const seg of path) {
      entry = cur?.entries.get(String(seg));
      cur = entry?.node.kind === 'map' ? entry.node : undefined;
    }
    if (entry) top.entries.set(name, { ...entry, key: name });
  }
  return {
    file: doc.file,
    schema: 'legacy',
    topology: 'file',
    pipeline: null,
    pipelineSelectedBy: null,
    asyncChunk,
    top,
    stages,
    warnings,
  };
}

function withAsyncChunk(stage: SourcedMap, value: boolean, source: SourcedEntry | undefined): SourcedMap {
  const existing = stage.entries.get('engine_args');
  const args =
    existing?.node.kind === 'map' ? existing.node : syntheticMap(existing ? entryLocation(existing) : stage.loc);
  const loc = source ? entryLocation(source) : args.loc;
  const flag: SourcedEntry = {
    key: 'async_chunk',
    keyLoc: source?.keyLoc ?? loc,
    node: { kind: 'scalar', value, loc, ...(source ? {} : { synthetic: true }) },
  };
  const argsEntry: SourcedEntry = {
    ...(existing ?? { key: 'engine_args', keyLoc: stage.loc }),
    node: withEntries(args, flag),
  };
  return withEntries(stage, argsEntry);
}
