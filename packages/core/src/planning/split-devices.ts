import { OmniError, type SourceLocation } from '../errors.js';
import { splitDeviceList } from './device-ids.js';

const INTEGER = /^[+-]?\d+$/;

/** Options of {@link splitDevicesForReplicas}. */
export interface SplitDevicesOptions {
  /** Where `runtime.devices` was written; attached to the errors. */
  location?: SourceLocation;
}

/**
 * Splits one stage's `runtime.devices` into one device string per replica (upstream
 * `split_devices_for_replicas`). `devicesPerReplica` is upstream's `tp_size`: the TP size
 * of an LLM stage, the parallel world size of a diffusion stage.
 *
 * - `numReplicas <= 1` or `devices` null: a one-element list `[devices]`, as upstream. (A missing
 *   `devices` with several replicas is rejected earlier, by {@link computeReplicaLayout}.)
 * - **pool mode**, `R·tp` ids: replica `r` gets ids `[r·tp, (r+1)·tp)`, not validated.
 * - **template mode**, `tp` ids: integer offsets in `[0, tp)`; replica `r` gets `r·tp + offset` for
 *   each offset, in template order.
 * - any other count: an error.
 *
 * The results are logical indices into the launcher's visible devices, not physical ids.
 *
 * @param stageIdx the stage's position in the stage list; error messages name it as "Stage S".
 * @throws OmniError `OMNI_PLAN_DEVICES`
 */
export function splitDevicesForReplicas(
  devices: string | number | null,
  numReplicas: number,
  devicesPerReplica: number,
  stageIdx: number,
  options: SplitDevicesOptions = {},
): (string | null)[] {
  // A YAML int (`devices: 1`) means the same as the string "1".
  const text = devices === null ? null : String(devices);
  if (numReplicas <= 1 || text === null) return [text];

  const tp = devicesPerReplica;
  const where = { location: options.location, context: { stage_idx: stageIdx, phase: 'plan' } };
  if (!Number.isInteger(tp) || tp < 1) {
    throw new OmniError(
      'OMNI_PLAN_DEVICES',
      `Stage ${stageIdx}: devices per replica must be a positive integer, got ${String(tp)}.`,
      { ...where, hint: "check the stage's tensor_parallel_size (LLM) or parallel_config (diffusion)" },
    );
  }

  const tokens = splitDeviceList(text);
  if (tokens.length === numReplicas * tp) {
    return Array.from({ length: numReplicas }, (_, r) => tokens.slice(r * tp, (r + 1) * tp).join(','));
  }

  if (tokens.length === tp) {
    if (!tokens.every((t) => INTEGER.test(t))) {
      throw new OmniError(
        'OMNI_PLAN_DEVICES',
        `Stage ${stageIdx}: template-mode devices must be integers, got "${text}".`,
        { ...where, hint: `write ${tp} integer offset(s) in [0, ${tp}), e.g. "${offsetsExample(tp)}"` },
      );
    }
    const offsets = tokens.map((t) => Number.parseInt(t, 10));
    const bad = offsets.filter((a) => a < 0 || a >= tp);
    if (bad.length > 0) {
      throw new OmniError(
        'OMNI_PLAN_DEVICES',
        `Stage ${stageIdx}: template-mode device offsets [${bad.join(', ')}] of devices "${text}" are outside [0, ${tp}).`,
        {
          ...where,
          hint:
            `a template of ${tp} id(s) is repeated per replica, so its offsets must lie in [0, ${tp}) ` +
            `(e.g. "${offsetsExample(tp)}"); to name exact devices, list a pool of ${numReplicas * tp} ids`,
        },
      );
    }
    return Array.from({ length: numReplicas }, (_, r) => offsets.map((a) => String(r * tp + a)).join(','));
  }

  throw new OmniError(
    'OMNI_PLAN_DEVICES',
    `Stage ${stageIdx}: devices "${text}" has ${tokens.length} id(s), but ${numReplicas} replicas need either ` +
      `${tp} id(s) (a per-replica template) or ${numReplicas * tp} ids (a pool of num_replicas × tp) ` +
      `(num_replicas=${numReplicas}, tensor_parallel_size=${tp}).`,
    {
      ...where,
      hint: `write a template like "${offsetsExample(tp)}" or a pool of ${numReplicas * tp} device ids`,
    },
  );
}

function offsetsExample(tp: number): string {
  return Array.from({ length: tp }, (_, i) => String(i)).join(',');
}
