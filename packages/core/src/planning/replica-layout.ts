import type { StageConfig } from '../config/types.js';
import { PLAN_LIMITS } from '../limits.js';
import { OmniError } from '../errors.js';
import { splitDevicesForReplicas } from './split-devices.js';

/** Options of {@link computeReplicaLayout}. */
export interface ReplicaLayoutOptions {
  /**
   * Keep `num_replicas: 0` instead of clamping it to 1 (head mode: stages filled later by remote
   * registrations).
   */
  allowZero?: boolean;
  /** Devices one replica of the stage consumes; supplied by the stage-type plugin (upstream `get_stage_devices_per_replica`). */
  devicesPerReplica: (stage: StageConfig) => number;
}

/** Result of {@link computeReplicaLayout}. */
export interface ReplicaLayout {
  /** Replica count per stage, by position in the stage list. */
  replicasPerStage: number[];
  /** Stage position → one logical device string per replica; only stages with more than one replica. */
  replicaDevices: Map<number, (string | null)[]>;
}

const INTEGER = /^[+-]?\d+$/;

/**
 * Replica counts and per-replica device strings of every stage (upstream `compute_replica_layout`
 * in `vllm_omni/engine/stage_init_utils.py`). Stages are addressed by their **position** in `stages`, as upstream does, both in the
 * map and in error messages ("Stage S").
 *
 * `num_replicas > 1` without `runtime.devices` gives every replica the inherited visibility (null
 * devices), as upstream does since #5444 (before, a one-element split crashed later).
 *
 * @throws OmniError `OMNI_CONFIG_INVALID` (bad or negative count), `OMNI_PLAN_DEVICES`
 */
export function computeReplicaLayout(stages: readonly StageConfig[], options: ReplicaLayoutOptions): ReplicaLayout {
  const replicasPerStage: number[] = [];
  const replicaDevices = new Map<number, (string | null)[]>();

  stages.forEach((stage, idx) => {
    const count = replicaCount(stage, idx, options.allowZero ?? false);
    replicasPerStage.push(count);
    if (count <= 1) return;

    // Typed as string | null, but a YAML int may still arrive here from hand-built configs.
    const devices = stage.runtime.devices as string | number | null | undefined;
    const perReplica = options.devicesPerReplica(stage);
    if (devices === null || devices === undefined) {
      // Upstream (since #5444): every replica inherits the launcher's visible devices.
      replicaDevices.set(
        idx,
        Array.from({ length: count }, () => null),
      );
      return;
    }
    replicaDevices.set(
      idx,
      splitDevicesForReplicas(devices, count, perReplica, idx, { location: stage.locations.at('runtime.devices') }),
    );
  });

  return { replicasPerStage, replicaDevices };
}

/**
 * Upstream reads the count with Python `int()`: ints and integer strings (`"2"`) are accepted, a
 * missing value is 1. Unlike `int()` we reject floats instead of truncating them (`1.5` is a typo,
 * not a request for one replica).
 */
function replicaCount(stage: StageConfig, idx: number, allowZero: boolean): number {
  const raw: unknown = (stage.runtime as { num_replicas?: unknown } | undefined)?.num_replicas;
  const where = {
    location: stage.locations.at('runtime.num_replicas'),
    context: { stage_idx: idx, stage_id: stage.stage_id, phase: 'plan' },
  };
  let count: number;
  if (raw === undefined || raw === null) {
    count = 1;
  } else if (typeof raw === 'number' && Number.isInteger(raw)) {
    count = raw;
  } else if (typeof raw === 'string' && INTEGER.test(raw.trim())) {
    count = Number.parseInt(raw.trim(), 10);
  } else {
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `Stage ${idx}: num_replicas must be an integer, got ${JSON.stringify(raw)}.`,
      { ...where, hint: 'set runtime.num_replicas to a whole number such as 1 or 2' },
    );
  }
  if (count < 0 || count > PLAN_LIMITS.maxReplicas) {
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `Stage ${idx}: num_replicas must be between 0 and ${PLAN_LIMITS.maxReplicas}, got ${count}.`,
      {
        ...where,
        hint: `set runtime.num_replicas to 1 or more (at most ${PLAN_LIMITS.maxReplicas})`,
      },
    );
  }
  return allowZero ? count : Math.max(1, count);
}
