import { OmniError } from '@omnistage/core';
import { replicaLabel } from '@omnistage/core/runtime';

/** One replica that needs KV-transfer ports on this host. */
export interface KvPortRequest {
  stage_id: number;
  replica_id: number;
  /** Data-parallel ranks of the replica (each binds its own side-channel port). */
  dp_size: number;
  /** Workers per DP rank (TP × PP); connectors that bind one port per worker need that many. Default 1. */
  tp_size?: number;
}

/** Ports reserved for one replica: two disjoint blocks of `block_size` consecutive ports. */
export interface KvPortAssignment {
  /** First port of the `kv_port` block (vLLM `kv_port`; P2pNccl binds `kv_port + rank`). */
  kv_port: number;
  /** First port of the side-channel block (NIXL `base + dp_rank`, Mooncake `base + dp_rank × tp + tp_rank`). */
  side_channel_port: number;
  /** Ports in each block: `dp_size × tp_size`. */
  block_size: number;
}

/** Key of a replica in the map returned by {@link allocateKvPorts}. */
export function kvPortKey(stageId: number, replicaId: number): string {
  return `${stageId}:${replicaId}`;
}

/**
 * Reserves KV-transfer ports for every replica on one host, from `basePort` upwards, so that no two
 * replicas share any port: each replica gets a `kv_port` block and a side-channel block of
 * `dp_size × tp_size` ports, packed one after another in (stage_id, replica_id) order (so the
 * result does not depend on the order of `replicas`). vLLM derives per-rank ports by adding the
 * rank to the base it is given; reserving the whole block is what keeps DP/TP ranks of one replica
 * from landing on the next replica's base.
 *
 * Throws `OMNI_CONFIG_INVALID` when the ports would run past 65535, `OMNI_INTERNAL` for a
 * malformed or duplicated request. Choose `basePort` away from the HTTP ports of the replicas.
 */
export function allocateKvPorts(replicas: readonly KvPortRequest[], basePort: number): Map<string, KvPortAssignment> {
  if (!Number.isSafeInteger(basePort) || basePort < 1 || basePort > 65535) {
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `KV base port must be an integer in 1..65535, got ${String(basePort)}.`,
      {
        hint: 'Pick a base port in a free range, e.g. 20000.',
      },
    );
  }
  const sorted = [...replicas].sort((a, b) => a.stage_id - b.stage_id || a.replica_id - b.replica_id);
  const result = new Map<string, KvPortAssignment>();
  let cursor = basePort;
  for (const r of sorted) {
    const tp = r.tp_size ?? 1;
    for (const [field, value, min] of [
      ['stage_id', r.stage_id, Number.MIN_SAFE_INTEGER],
      ['replica_id', r.replica_id, 0],
      ['dp_size', r.dp_size, 1],
      ['tp_size', tp, 1],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < min) {
        throw new OmniError('OMNI_INTERNAL', `KV port request has an invalid ${field}: ${String(value)}.`, {
          context: { stage_id: r.stage_id, replica_id: r.replica_id },
        });
      }
    }
    const key = kvPortKey(r.stage_id, r.replica_id);
    if (result.has(key)) {
      throw new OmniError('OMNI_INTERNAL', `KV ports requested twice for ${replicaLabel(r)}.`, {
        context: { stage_id: r.stage_id, replica_id: r.replica_id },
      });
    }
    const block = r.dp_size * tp;
    const assignment: KvPortAssignment = { kv_port: cursor, side_channel_port: cursor + block, block_size: block };
    cursor += 2 * block;
    if (cursor - 1 > 65535) {
      throw new OmniError(
        'OMNI_CONFIG_INVALID',
        `KV ports for ${replicaLabel(r)} would run past 65535 (base ${basePort}, ${sorted.length} replicas).`,
        { hint: 'Lower the KV base port.', context: { stage_id: r.stage_id, replica_id: r.replica_id } },
      );
    }
    result.set(key, assignment);
  }
  return result;
}
