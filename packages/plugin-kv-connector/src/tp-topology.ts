import { OmniError } from '@omnistage/core';
import type { SourceLocation, StageConfig } from '@omnistage/core';
import { isPlainObject } from './plain-object.js';
import { stageIdMatches, toConfigInt } from './stage-ids.js';

/**
 * Tensor-parallel size of the stage whose configured id is `stageId` (upstream `_tp_size_for_stage`
 * in `vllm_omni/engine/stage_init_utils.py`): `engine_args.parallel_config.tensor_parallel_size` when a `parallel_config` is given
 * (diffusion-style, but upstream applies it to every stage type), else
 * `engine_args.tensor_parallel_size`; missing or null → 1; at least 1. `1`, `"1"` both match stage 1;
 * the first matching stage wins; no match → null.
 *
 * Unlike upstream (non-numeric → 1), a value that is not an integer throws `OMNI_CONFIG_INVALID` at
 * its location: guessing 1 would compute a wrong rank mapping that only fails at transfer time.
 */
export function tpSizeForStage(stages: readonly StageConfig[], stageId: unknown): number | null {
  const stage = stages.find((s) => stageIdMatches(s.stage_id, stageId));
  if (stage === undefined) return null;
  const engineArgs: unknown = stage.engine_args;
  if (engineArgs === null || engineArgs === undefined) return 1;
  if (!isPlainObject(engineArgs)) {
    throw invalid(stage, 'engine_args', 'engine_args must be a mapping.');
  }
  const parallel = engineArgs.parallel_config;
  let value: unknown;
  let path: string;
  if (parallel !== null && parallel !== undefined) {
    if (!isPlainObject(parallel)) {
      throw invalid(stage, 'engine_args.parallel_config', 'engine_args.parallel_config must be a mapping.');
    }
    value = parallel.tensor_parallel_size;
    path = 'engine_args.parallel_config.tensor_parallel_size';
  } else {
    value = engineArgs.tensor_parallel_size;
    path = 'engine_args.tensor_parallel_size';
  }
  // null means "engine default" (upstream deletes a null TP before building the engine, #3293).
  if (value === null || value === undefined) return 1;
  const n = toConfigInt(value);
  if (n === null) throw invalid(stage, path, `${path} must be an integer, got ${JSON.stringify(value)}.`);
  return Math.max(1, n);
}

/**
 * Writes `rank_mapping: {from_tp, to_tp}` into an `omni_kv_config` so that KV transfer between
 * stages of different TP sizes works without the user writing it (upstream
 * `_inject_inferred_kv_tp_topology` in `vllm_omni/engine/stage_init_utils.py`). Pure: returns a new object (null for null input)
 * and never touches `omniKv`.
 *
 * Nothing is inferred unless `need_send_cache` or `need_recv_cache` is set and this stage is known.
 * The peer is chosen by the first rule that matches: this stage is `omni_from_stage` (it sends to
 * `omni_to_stage`); it is `omni_to_stage` (it receives from `omni_from_stage`); or — only when
 * `engineInputSource` is given, the diffusion/headless path — it receives and its first input
 * source is the peer. An unknown peer leaves the config as it was.
 *
 * User-written `rank_mapping` keys win; a `rank_mapping` that is not a mapping is replaced, as
 * upstream does. Unlike upstream, a non-boolean `need_*_cache`, a non-mapping `omni_kv_config` or a
 * user `from_tp`/`to_tp` that is not a positive integer throws `OMNI_CONFIG_INVALID`.
 */
export function injectInferredKvTpTopology(
  omniKv: unknown,
  stageId: number | string,
  stages: readonly StageConfig[],
  engineInputSource?: readonly (number | string)[],
): Record<string, unknown> | null {
  if (omniKv === null || omniKv === undefined) return null;
  const owner = stages.find((s) => stageIdMatches(s.stage_id, stageId));
  const base = 'engine_args.omni_kv_config';
  if (!isPlainObject(omniKv)) throw invalidAt(owner, base, 'omni_kv_config must be a mapping.');
  const result: Record<string, unknown> = { ...omniKv };

  const needSend = flag(result, 'need_send_cache', owner);
  const needRecv = flag(result, 'need_recv_cache', owner);
  if (!needSend && !needRecv) return result;

  const current = tpSizeForStage(stages, stageId);
  if (current === null) return result;

  const self = String(stageId);
  const fromStage = result.omni_from_stage;
  const toStage = result.omni_to_stage;
  let fromTp: number | null = null;
  let toTp: number | null = null;
  // String comparison, as upstream: `str(omni_from_stage) == str(stage_id)`; null never matches.
  if (fromStage !== null && fromStage !== undefined && String(fromStage) === self) {
    fromTp = current;
    toTp = tpSizeForStage(stages, toStage);
  } else if (toStage !== null && toStage !== undefined && String(toStage) === self) {
    fromTp = tpSizeForStage(stages, fromStage);
    toTp = current;
  } else if (needRecv && engineInputSource !== undefined && engineInputSource.length > 0) {
    fromTp = tpSizeForStage(stages, engineInputSource[0]);
    toTp = current;
  }
  if (fromTp === null || toTp === null) return result;

  const mapping: Record<string, unknown> = isPlainObject(result.rank_mapping) ? { ...result.rank_mapping } : {};
  for (const key of ['from_tp', 'to_tp'] as const) {
    if (!Object.hasOwn(mapping, key)) continue;
    const n = toConfigInt(mapping[key]);
    if (n === null || n < 1) {
      throw invalidAt(
        owner,
        `${base}.rank_mapping.${key}`,
        `rank_mapping.${key} must be a positive integer, got ${JSON.stringify(mapping[key])}.`,
      );
    }
  }
  if (!Object.hasOwn(mapping, 'from_tp')) mapping.from_tp = fromTp;
  if (!Object.hasOwn(mapping, 'to_tp')) mapping.to_tp = toTp;
  result.rank_mapping = mapping;
  return result;
}

function flag(omniKv: Record<string, unknown>, key: string, owner: StageConfig | undefined): boolean {
  const value = omniKv[key];
  if (value === undefined || value === null) return false;
  // Python's bool() would read the string "false" as true; refuse rather than guess.
  if (typeof value !== 'boolean') {
    throw invalidAt(
      owner,
      `engine_args.omni_kv_config.${key}`,
      `omni_kv_config.${key} must be true or false, got ${JSON.stringify(value)}.`,
    );
  }
  return value;
}

function invalid(stage: StageConfig, path: string, message: string): OmniError {
  return invalidAt(stage, path, message);
}

function invalidAt(stage: StageConfig | undefined, path: string, message: string): OmniError {
  const location: SourceLocation | undefined = stage?.locations.at(path);
  return new OmniError('OMNI_CONFIG_INVALID', stage === undefined ? message : `Stage ${stage.stage_id}: ${message}`, {
    ...(location === undefined ? {} : { location }),
    hint: 'Fix the value in the stage config; omnistage does not guess KV topology from malformed values.',
    ...(stage === undefined ? {} : { context: { stage_id: stage.stage_id } }),
  });
}
