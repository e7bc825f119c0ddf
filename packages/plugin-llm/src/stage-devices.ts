import { OmniError, PLAN_LIMITS, invalidValue } from '@omnistage/core';
import type { StageConfig } from '@omnistage/core';

/**
 * Tensor-parallel size of a stage (upstream `get_stage_tp_size`):
 * `engine_args.tensor_parallel_size`, where a falsy value (absent, `null`, `0`) means 1, then
 * integer conversion (`"2"` → 2; unlike upstream a fraction such as `1.5` is refused, not truncated).
 * Nested `parallel_config` and the context parallel size are deliberately ignored, as upstream does.
 *
 * Where upstream's `int()` would raise (non-numeric text) or return a nonsensical size (negative),
 * this throws `OMNI_CONFIG_INVALID` at the key's YAML location instead.
 */
export function getStageTpSize(stage: StageConfig): number {
  return parallelSize(stage, 'tensor_parallel_size');
}

/** A parallel size from `engine_args[key]` with upstream's `int()` reading; errors at the key. */
function parallelSize(stage: StageConfig, key: string): number {
  const raw = stage.engine_args[key];
  if (raw === null || raw === undefined || raw === 0 || raw === '' || raw === false) return 1;
  let value: number | undefined;
  if (typeof raw === 'number' && Number.isInteger(raw)) value = raw;
  else if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) value = Number.parseInt(raw, 10);
  else if (raw === true) value = 1; // Python: int(True) == 1
  if (value === undefined || value < 1 || value > PLAN_LIMITS.maxParallelSize) {
    throw invalidValue({
      what: key,
      expected: `an integer from 1 to ${PLAN_LIMITS.maxParallelSize}`,
      got: raw,
      location: stage.locations.at(`engine_args.${key}`),
      hint: `Set engine_args.${key} to the number of devices one replica spreads over on that axis (e.g. 2), or remove it for 1.`,
      context: { stage_id: stage.stage_id },
    });
  }
  return value;
}

/**
 * Devices one replica of a non-diffusion stage needs (upstream `get_stage_devices_per_replica`,
 * current main): tensor × local data × pipeline parallel size. Local DP is
 * `data_parallel_size_local` when set (a multi-node DP replica holds only its local ranks), else
 * `data_parallel_size`. Each size is read like the TP size (falsy → 1, integer text accepted).
 *
 * Diffusion stages size replicas by their parallel world size, which `@omnistage/plugin-diffusion`
 * owns; calling this for one is a bug in the caller (`OMNI_INTERNAL`).
 */
export function getStageDevicesPerReplica(stage: StageConfig): number {
  if (stage.stage_type === 'diffusion') {
    throw new OmniError(
      'OMNI_INTERNAL',
      `Stage ${stage.stage_id} is a diffusion stage; the LLM plugin cannot size its replicas.`,
      {
        location: stage.locations.at('stage_type'),
        hint: 'Diffusion stages are sized by @omnistage/plugin-diffusion (parallel world size).',
        context: { stage_id: stage.stage_id },
      },
    );
  }
  const dpKey = stage.engine_args['data_parallel_size_local'] ? 'data_parallel_size_local' : 'data_parallel_size';
  return getStageTpSize(stage) * parallelSize(stage, dpKey) * parallelSize(stage, 'pipeline_parallel_size');
}
