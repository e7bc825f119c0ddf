import { OmniError, PLAN_LIMITS, invalidValue } from '@omnistage/core';
import type { StageConfig } from '@omnistage/core';

/**
 * Tensor-parallel size of a stage (upstream `get_stage_tp_size`, spec b.16):
 * `engine_args.tensor_parallel_size`, where a falsy value (absent, `null`, `0`) means 1, then
 * integer conversion (`"2"` → 2; unlike upstream a fraction such as `1.5` is refused, not truncated). Nested `parallel_config` and the pipeline / data /
 * context parallel sizes are deliberately ignored, as upstream does.
 *
 * Where upstream's `int()` would raise (non-numeric text) or return a nonsensical size (negative),
 * this throws `OMNI_CONFIG_INVALID` at the key's YAML location instead.
 */
export function getStageTpSize(stage: StageConfig): number {
  const raw = stage.engine_args['tensor_parallel_size'];
  if (raw === null || raw === undefined || raw === 0 || raw === '' || raw === false) return 1;
  let value: number | undefined;
  if (typeof raw === 'number' && Number.isInteger(raw)) value = raw;
  else if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) value = Number.parseInt(raw, 10);
  else if (raw === true) value = 1; // Python: int(True) == 1
  if (value === undefined || value < 1 || value > PLAN_LIMITS.maxParallelSize) {
    throw invalidValue({
      what: 'tensor_parallel_size',
      expected: `an integer from 1 to ${PLAN_LIMITS.maxParallelSize}`,
      got: raw,
      location: stage.locations.at('engine_args.tensor_parallel_size'),
      hint: 'Set engine_args.tensor_parallel_size to the number of GPUs one replica shards the model over (e.g. 2), or remove it for 1.',
      context: { stage_id: stage.stage_id },
    });
  }
  return value;
}

/**
 * Devices one replica of a non-diffusion stage needs (upstream `get_stage_devices_per_replica`,
 * first bullet of spec b.17): the tensor-parallel size only — pipeline and data parallelism do not
 * count here (they do count for device locks, see {@link llmLockDeviceCount}).
 *
 * Diffusion stages size replicas by their parallel world size, which `@omnistage/plugin-diffusion`
 * owns; calling this for one is a bug in the caller (`OMNI_INTERNAL`).
 */
export function getStageDevicesPerReplica(stage: StageConfig): number {
  if (stage.stage_type === 'diffusion') {
    throw new OmniError('OMNI_INTERNAL', `Stage ${stage.stage_id} is a diffusion stage; the LLM plugin cannot size its replicas.`, {
      location: stage.locations.at('stage_type'),
      hint: 'Diffusion stages are sized by @omnistage/plugin-diffusion (parallel world size).',
      context: { stage_id: stage.stage_id },
    });
  }
  return getStageTpSize(stage);
}
