import type { EngineArgs } from '../config/types.js';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { OmniError, type SourceLocation } from '../errors.js';
import { sortDeviceIds, uniqueDeviceIds } from './device-ids.js';
import { replicaLabel } from '../error-messages.js';

/** What {@link checkAdmission} needs of a replica. */
export interface AdmissionReplica {
  stage_id: number;
  replica_id: number;
  /** Physical devices; null or empty = every device of `options.visible`. */
  physical_devices: readonly string[] | null;
  engine_args: EngineArgs;
}

/** Options of {@link checkAdmission}. */
export interface AdmissionOptions {
  /** Share of every device kept free, in [0, 1). Default 0: replicas may use the whole device. */
  reserve?: number;
  /** Report over-commit as warnings instead of failing (`--allow-overcommit`). */
  allowOvercommit?: boolean;
  /** Where a stage's `gpu_memory_utilization` was written, for the error and warnings. */
  locate?: (stageId: number) => SourceLocation | undefined;
  /** The launcher's visible devices: what a replica without devices is charged on. */
  visible?: readonly string[];
}

// 0.6 + 0.4 is 1.0000000000000002 in binary floating point; that is not over-commit.
const EPSILON = 1e-9;

/**
 * Pre-launch admission (brief §4): per physical device, the `gpu_memory_utilization` of the replicas
 * on it must sum to at most `1 − reserve`.
 *
 * Only replicas that set `gpu_memory_utilization` explicitly are counted. vLLM would default an
 * unset value to 0.9, but stages of other engines (diffusion, TTS, custom types) have no such
 * budget, and charging them 0.9 would reject layouts that run fine; a budget we do not know is not
 * checked. A replica without devices is charged on every visible device, as it may use any of them
 * (the same rule launch groups use).
 *
 * @returns warnings (code `OMNI_PLAN_OVERCOMMIT`, one per device) when `allowOvercommit` is set,
 *   else an empty list.
 * @throws OmniError `OMNI_PLAN_OVERCOMMIT` listing every over-committed device;
 *   `OMNI_CONFIG_INVALID` for a budget that is not a number in (0, 1] or a reserve outside [0, 1).
 */
export function checkAdmission(replicas: readonly AdmissionReplica[], options: AdmissionOptions = {}): Diagnostic[] {
  const reserve = options.reserve ?? 0;
  if (!(reserve >= 0 && reserve < 1)) {
    throw new OmniError('OMNI_CONFIG_INVALID', `The memory reserve must be in [0, 1), got ${reserve}.`, {
      hint: 'pass a reserve such as 0.05 (5% of every device kept free)',
    });
  }
  const capacity = 1 - reserve;
  const locate = (stageId: number): SourceLocation | undefined => options.locate?.(stageId);

  const charges = new Map<string, { replica: AdmissionReplica; budget: number }[]>();
  for (const replica of replicas) {
    const budget = budgetOf(replica, locate);
    if (budget === null) continue;
    const own = replica.physical_devices;
    const devices = own !== null && own.length > 0 ? own : (options.visible ?? []);
    for (const device of uniqueDeviceIds(devices)) {
      const list = charges.get(device) ?? [];
      list.push({ replica, budget });
      charges.set(device, list);
    }
  }

  const over: { device: string; text: string; stages: number[] }[] = [];
  for (const device of sortDeviceIds([...charges.keys()])) {
    const list = charges.get(device) ?? [];
    const sum = list.reduce((s, c) => s + c.budget, 0);
    if (sum <= capacity + EPSILON) continue;
    const terms = list.map((c) => `${replicaLabel(c.replica)} (${c.budget})`);
    const limit =
      reserve > 0 ? `${capacity.toFixed(2)} (1.00 minus reserve ${reserve.toFixed(2)})` : capacity.toFixed(2);
    over.push({
      device,
      text: `device ${device}: ${terms.join(' + ')} = ${sum.toFixed(2)} > ${limit}`,
      stages: uniqueNumbers(list.map((c) => c.replica.stage_id)),
    });
  }
  if (over.length === 0) return [];

  const hint =
    `lower gpu_memory_utilization so the replicas on each device sum to at most ${capacity.toFixed(2)}, ` +
    'move a stage to another device, or pass --allow-overcommit to start anyway';
  if (options.allowOvercommit === true) {
    return over.map((o) =>
      diagnostic(
        'OMNI_PLAN_OVERCOMMIT',
        `GPU memory over-committed on ${o.text}.`,
        locateFirst(o.stages, locate),
        hint,
      ),
    );
  }

  const stages = uniqueNumbers(over.flatMap((o) => o.stages));
  const locations = stages.map(locate).filter((l): l is SourceLocation => l !== undefined);
  const first = over[0];
  throw new OmniError(
    'OMNI_PLAN_OVERCOMMIT',
    `GPU memory over-committed on ${over.length} device(s): ${over.map((o) => o.text).join('; ')}.`,
    {
      hint,
      location: locations[0],
      related: locations.slice(1),
      context: { phase: 'plan', device: first?.device, stage_ids: stages, devices: over.map((o) => o.device) },
    },
  );
}

function budgetOf(replica: AdmissionReplica, locate: (stageId: number) => SourceLocation | undefined): number | null {
  const raw = replica.engine_args['gpu_memory_utilization'];
  if (raw === undefined || raw === null) return null;
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 1) {
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `Stage ${replica.stage_id}: gpu_memory_utilization must be a number in (0, 1], got ${JSON.stringify(raw)}.`,
      {
        location: locate(replica.stage_id),
        context: { stage_id: replica.stage_id, replica_id: replica.replica_id, phase: 'plan' },
        hint: 'set engine_args.gpu_memory_utilization to the share of the device this stage may use, e.g. 0.45',
      },
    );
  }
  return value;
}

function uniqueNumbers(values: readonly number[]): number[] {
  return [...new Set(values)];
}

function locateFirst(
  stages: readonly number[],
  locate: (stageId: number) => SourceLocation | undefined,
): SourceLocation | undefined {
  for (const s of stages) {
    const loc = locate(s);
    if (loc !== undefined) return loc;
  }
  return undefined;
}
