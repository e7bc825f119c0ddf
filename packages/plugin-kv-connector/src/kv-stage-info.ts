import { OmniError } from '@omnistage/core';
import type { EngineArgs, StageConfig } from '@omnistage/core';
import { isPlainObject } from './plain-object.js';
import { injectInferredKvTpTopology } from './tp-topology.js';
import type { OmniKvConnector } from './types.js';

/** Options of {@link injectKvStageInfo}. */
export interface InjectKvStageInfoOptions {
  /** From {@link resolveOmniKvConfigForStage}; null (or a null config) when the stage has no KV edge. */
  connector: OmniKvConnector | null;
  /**
   * Use the stage's first `engine_input_source` as the sending peer when `omni_from_stage` /
   * `omni_to_stage` do not name this stage. Upstream does this on the diffusion/headless path
   * (`inject_kv_stage_info`) and not on the LLM plan-builder path.
   */
  withReceiverFallback: boolean;
}

/**
 * Completes a stage's `omni_kv_config` (upstream `inject_kv_stage_info` in `vllm_omni/engine/stage_init_utils.py`, plus what upstream's engine does for LLM stages when it builds each stage's plan).
 * Pure: returns new engine args and never mutates `engineArgs`, `stage` or `stages`.
 *
 * 1. When a connector config was resolved, `omni_kv_config` (created if absent) gets
 *    `connector_config`, `omni_from_stage`, `omni_to_stage` (overwritten) and `stage_id` (if absent).
 * 2. With no `omni_kv_config` after that, the engine args are returned unchanged (as a copy).
 * 3. `stage_id` and `engine_input_source` (when the stage lists sources) are set if absent —
 *    existing values win.
 * 4. TP topology is inferred into `rank_mapping` ({@link injectInferredKvTpTopology}), with the
 *    receiver fallback only when `withReceiverFallback`.
 *
 * Unlike upstream, which swallows every failure here into a debug log, a malformed
 * `omni_kv_config` throws `OMNI_CONFIG_INVALID` at its location.
 */
export function injectKvStageInfo(
  engineArgs: EngineArgs,
  stage: StageConfig,
  stages: readonly StageConfig[],
  opts: InjectKvStageInfoOptions,
): EngineArgs {
  const existing = engineArgs.omni_kv_config;
  if (existing !== undefined && existing !== null && !isPlainObject(existing)) {
    throw new OmniError('OMNI_CONFIG_INVALID', `Stage ${stage.stage_id}: omni_kv_config must be a mapping.`, {
      location: stage.locations.at('engine_args.omni_kv_config'),
      hint: 'Write omni_kv_config as key: value pairs (need_send_cache, need_recv_cache, kv_transfer_criteria, rank_mapping).',
      context: { stage_id: stage.stage_id },
    });
  }
  let omniKv: Record<string, unknown> | null = existing === undefined || existing === null ? null : { ...existing };

  const [connectorConfig, from, to] = opts.connector ?? [null, null, null];
  if (connectorConfig !== null) {
    omniKv = {
      ...(omniKv ?? {}),
      connector_config: { ...connectorConfig },
      omni_from_stage: from,
      omni_to_stage: to,
    };
  }
  if (omniKv === null) return { ...engineArgs };

  if (!Object.hasOwn(omniKv, 'stage_id')) omniKv.stage_id = stage.stage_id;
  if (stage.engine_input_source.length > 0 && !Object.hasOwn(omniKv, 'engine_input_source')) {
    omniKv.engine_input_source = [...stage.engine_input_source];
  }
  if (stages.length > 0) {
    omniKv =
      injectInferredKvTpTopology(
        omniKv,
        stage.stage_id,
        stages,
        opts.withReceiverFallback ? stage.engine_input_source : undefined,
      ) ?? omniKv;
  }
  return { ...engineArgs, omni_kv_config: omniKv };
}
