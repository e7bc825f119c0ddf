/**
 * `--stage-overrides '{"<stage_id>": {key: value}}'` (JSON or YAML): per-stage patches with the
 * highest precedence. `devices`, `num_replicas`, `env`, `restart`, `max_inflight_per_replica` go to the runtime (upstream put
 * `env` into engine_args, #3900; we do not), `engine` to the stage, `default_sampling_params` is
 * deep-merged, well-known sampling parameters (`max_tokens`, `temperature`, ...) go to
 * `default_sampling_params`, anything else is an engine arg — unless it is a near miss of one of
 * the keys above (`devics`), which is an error: a typo must not become an engine arg silently.
 * Such bare engine args are remembered on the stage (`StageConfig.override_args`): the planner
 * refuses those that the stage's engine does not take, once it knows the engine.
 */
import { OmniError } from '../errors.js';
import { didYouMeanPrefix } from './did-you-mean.js';
import { validateSourced } from './issues.js';
import { parseSourced } from './load.js';
import { OVERRIDE_FORBIDDEN_KEYS, stageOverridesSchema } from './schema.js';
import { deepMerge, entryLocation, syntheticMap, withEntries, type SourcedEntry, type SourcedMap } from './sourced.js';
import type { StageDraft } from './draft.js';

/** Pseudo file name of override locations: `<stage-overrides>:1:23`. */
export const STAGE_OVERRIDES_FILE = '<stage-overrides>';

const RUNTIME_KEYS = new Set(['devices', 'num_replicas', 'env', 'restart', 'max_inflight_per_replica']);
/** Runtime keys that patch (merge into) the existing value rather than replace it. */
const MERGED_RUNTIME_KEYS = new Set(['env', 'restart']);
const FORBIDDEN = new Set<string>(OVERRIDE_FORBIDDEN_KEYS);
const STRUCTURAL_KEYS = [...RUNTIME_KEYS, 'runtime', 'engine', 'engine_args', 'default_sampling_params'];
/** The keys an override names that are not engine args, for the planner's "allowed keys" hint. */
export const OVERRIDE_STAGE_KEYS: readonly string[] = STRUCTURAL_KEYS;
/**
 * Sampling parameters an override may name bare; they are never engine args of any engine. Others
 * (and `seed`, which vLLM also takes as an engine arg) go under `default_sampling_params`.
 */
export const OVERRIDE_SAMPLING_KEYS: ReadonlySet<string> = new Set([
  'max_tokens',
  'min_tokens',
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'presence_penalty',
  'frequency_penalty',
  'repetition_penalty',
  'stop',
  'stop_token_ids',
  'ignore_eos',
  'num_inference_steps',
  'guidance_scale',
  'true_cfg_scale',
  'negative_prompt',
  'num_outputs_per_prompt',
  'height',
  'width',
  'num_frames',
]);

/** Parses, validates and applies the overrides; the drafts are not modified. */
export function applyStageOverrides(stages: readonly StageDraft[], text: string): StageDraft[] {
  const doc = parseSourced(text, STAGE_OVERRIDES_FILE, 'OMNI_CONFIG_OVERRIDE_INVALID');
  const root = doc.root;
  if (root.kind !== 'map') {
    throw new OmniError(
      'OMNI_CONFIG_OVERRIDE_INVALID',
      '--stage-overrides must be a map from stage id to the keys to change.',
      {
        location: root.loc,
        hint: 'Write e.g. --stage-overrides \'{"1": {"devices": "2", "gpu_memory_utilization": 0.5}}\'.',
      },
    );
  }
  const known = stages.map((s) => s.stageId);
  for (const [key, entry] of root.entries) {
    if (!/^-?\d+$/.test(key) || !known.includes(Number(key))) {
      const guess = didYouMeanPrefix(key, known.map(String));
      const message = `--stage-overrides names stage \`${key}\`, but the pipeline has no stage with that stage_id.`;
      throw new OmniError('OMNI_CONFIG_OVERRIDE_INVALID', message, {
        location: entry.keyLoc,
        hint: `${guess}Known stage ids: ${known.join(', ')}.`,
      });
    }
    if (entry.node.kind === 'map') {
      for (const [k, e] of entry.node.entries) {
        const near =
          STRUCTURAL_KEYS.includes(k) || OVERRIDE_SAMPLING_KEYS.has(k) ? '' : didYouMeanPrefix(k, STRUCTURAL_KEYS);
        if (near !== '') {
          throw new OmniError(
            'OMNI_CONFIG_OVERRIDE_INVALID',
            `--stage-overrides: unknown key \`${k}\` for stage ${key}.`,
            {
              location: e.keyLoc,
              hint: `${near}To pass \`${k}\` to the engine as it is, nest it: {"${key}": {"engine_args": {"${k}": ...}}}.`,
            },
          );
        }
        if (FORBIDDEN.has(k)) {
          const message = `--stage-overrides cannot change \`${k}\` of stage ${key}: it is part of the pipeline topology.`;
          throw new OmniError('OMNI_CONFIG_OVERRIDE_INVALID', message, {
            location: e.keyLoc,
            hint: 'Overrides patch runtime settings, engine and engine args; edit the pipeline file to change the topology.',
          });
        }
      }
    }
  }
  validateSourced(stageOverridesSchema, root, {
    invalidCode: 'OMNI_CONFIG_OVERRIDE_INVALID',
    unknownKeyCode: 'OMNI_CONFIG_OVERRIDE_INVALID',
    label: '--stage-overrides',
  });

  return stages.map((stage) => {
    const patch = root.entries.get(String(stage.stageId))?.node;
    if (patch?.kind !== 'map') return stage;
    const bare = [...patch.entries.keys()].filter(isBareEngineArg);
    return {
      ...stage,
      node: patchStage(stage.node, patch),
      ...(bare.length > 0 ? { overrideArgs: [...(stage.overrideArgs ?? []), ...bare] } : {}),
    };
  });
}

/** A key of an override that goes to `engine_args` although it is not nested under it. */
function isBareEngineArg(key: string): boolean {
  return !RUNTIME_KEYS.has(key) && !STRUCTURAL_KEYS.includes(key) && !OVERRIDE_SAMPLING_KEYS.has(key);
}

function patchStage(stage: SourcedMap, patch: SourcedMap): SourcedMap {
  let runtime = childMap(stage, 'runtime');
  let args = childMap(stage, 'engine_args');
  let out = stage;
  const runtimeSet = (key: string, e: SourcedEntry): void => {
    const prev = runtime.entries.get(key);
    const node = prev && MERGED_RUNTIME_KEYS.has(key) ? deepMerge(prev.node, e.node) : e.node;
    runtime = withEntries(runtime, { ...e, key, node });
  };
  for (const [key, e] of patch.entries) {
    if (RUNTIME_KEYS.has(key)) runtimeSet(key, e);
    else if (key === 'runtime' && e.node.kind === 'map') for (const [k, sub] of e.node.entries) runtimeSet(k, sub);
    else if (key === 'engine') out = withEntries(out, e);
    else if (key === 'default_sampling_params') {
      const prev = out.entries.get(key);
      out = withEntries(out, { ...e, node: prev ? deepMerge(prev.node, e.node) : e.node });
    } else if (OVERRIDE_SAMPLING_KEYS.has(key)) {
      const prev = out.entries.get('default_sampling_params');
      const params = prev?.node.kind === 'map' ? prev.node : syntheticMap(e.keyLoc);
      out = withEntries(out, {
        key: 'default_sampling_params',
        keyLoc: prev?.keyLoc ?? e.keyLoc,
        node: withEntries(params, e),
      });
    } else if (key === 'engine_args') {
      const merged = deepMerge(args, e.node);
      if (merged.kind === 'map') args = { ...merged, loc: args.loc, ...(args.synthetic ? { synthetic: true } : {}) };
    } else args = withEntries(args, e);
  }
  return withEntries(
    out,
    { key: 'runtime', keyLoc: stage.entries.get('runtime')?.keyLoc ?? runtime.loc, node: runtime },
    { key: 'engine_args', keyLoc: stage.entries.get('engine_args')?.keyLoc ?? args.loc, node: args },
  );
}

/** The stage's map under `key`, or an empty synthetic one where the stage has none. */
function childMap(stage: SourcedMap, key: string): SourcedMap {
  const entry = stage.entries.get(key);
  if (entry?.node.kind === 'map') return entry.node;
  return syntheticMap(entry ? entryLocation(entry) : stage.loc);
}
