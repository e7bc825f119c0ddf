import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { OmniError, type SourceLocation } from '../errors.js';
import { splitDeviceList } from './device-ids.js';

/** Result of {@link mapLogicalDevices}. */
export interface MappedDevices {
  /** Physical ids for the child's device env var, or null: inherit every visible device. */
  physical: string[] | null;
  warnings: Diagnostic[];
}

const DIGITS = /^\d+$/;

/**
 * Maps a replica's logical `devices` onto physical ids (upstream `set_stage_devices` +
 * `_map_device_list` in `vllm_omni/engine/stage_init_utils.py`):
 *
 * - null or `"cpu"`: null, the child inherits every visible device;
 * - every token must be a non-negative integer;
 * - logical `i` becomes `visible[i]`, in the order written (duplicates kept);
 * - when **every** id is `>= visible.length` the ids are taken as physical ids and passed through
 *   (upstream's compatibility rule, with warning `OMNI_WARN_PHYSICAL_DEVICE_IDS`);
 * - otherwise out-of-range ids are dropped (warning `OMNI_WARN_DEVICE_DROPPED`).
 *
 * Upstream maps only when the device env var was set; with it unset it writes the logical ids as
 * they are. We always map through `visible`: the planner always knows it (without the env var it is
 * `"0".."n-1"` of the detected devices, where mapping is the identity), and mapping makes an id past
 * the last device a visible warning instead of an env var the accelerator runtime misreads.
 * `envWasSet` only shapes the messages.
 *
 * Deviation: `devices: ""` (or only commas) is rejected; upstream writes an empty visibility and the
 * child silently sees no device.
 *
 * @param stageIdx the stage's position, named in messages as "Stage S".
 * @param location where `runtime.devices` was written; attached to errors and warnings.
 * @throws OmniError `OMNI_PLAN_DEVICES`
 */
export function mapLogicalDevices(
  stageIdx: number,
  devices: string | null,
  visible: readonly string[],
  envWasSet: boolean,
  location?: SourceLocation,
): MappedDevices {
  if (devices === null || devices === 'cpu') return { physical: null, warnings: [] };

  const where = { location, context: { stage_idx: stageIdx, phase: 'plan' } };
  const logical = splitDeviceList(devices);
  if (logical.length === 0) {
    throw new OmniError('OMNI_PLAN_DEVICES', `Stage ${stageIdx}: runtime.devices is empty ("${devices}").`, {
      ...where,
      hint: 'remove runtime.devices to use every visible device, or list logical ids such as "0" or "0,1"',
    });
  }
  const bad = logical.filter((t) => !DIGITS.test(t));
  if (bad.length > 0) {
    throw new OmniError(
      'OMNI_PLAN_DEVICES',
      `Stage ${stageIdx}: logical devices must be non-negative integers, got "${devices}" (${bad.map((t) => `"${t}"`).join(', ')}).`,
      { ...where, hint: 'write runtime.devices as a comma list of indices into the visible devices, e.g. "0,1"' },
    );
  }

  const source = envWasSet ? 'the device env var' : 'detection';
  const visibleText = `[${visible.join(', ')}]`;
  const indices = logical.map((t) => Number.parseInt(t, 10));
  if (indices.every((i) => i >= visible.length)) {
    // Canonical form ("07" → "7") so lock names and env values agree for the same device.
    const physical = indices.map(String);
    return {
      physical,
      warnings: [
        diagnostic(
          'OMNI_WARN_PHYSICAL_DEVICE_IDS',
          `Stage ${stageIdx}: devices "${devices}" are all outside the ${visible.length} visible device(s) ` +
            `${visibleText} (from ${source}); using them as physical device ids.`,
          location,
          `runtime.devices are logical indices 0..${Math.max(0, visible.length - 1)} into the visible devices`,
        ),
      ],
    };
  }

  const physical: string[] = [];
  const dropped: string[] = [];
  for (const [k, i] of indices.entries()) {
    const id = visible[i];
    if (id === undefined) dropped.push(logical[k] ?? String(i));
    else physical.push(id);
  }
  const warnings =
    dropped.length === 0
      ? []
      : [
          diagnostic(
            'OMNI_WARN_DEVICE_DROPPED',
            `Stage ${stageIdx}: logical device(s) ${dropped.join(', ')} of "${devices}" are outside the ` +
              `${visible.length} visible device(s) ${visibleText} (from ${source}) and were dropped.`,
            location,
            `use logical indices 0..${visible.length - 1}`,
          ),
        ];
  return { physical, warnings };
}
