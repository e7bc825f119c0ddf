import { OmniError } from '@omnistage/core';
import { kvPortKey } from './kv-ports.js';
import type { KvPortAssignment } from './kv-ports.js';
import { replicaLabel } from '@omnistage/core/runtime';

/** vLLM's own KV connector classes that omnistage knows how to configure. */
export const VLLM_KV_CONNECTORS = [
  'NixlConnector',
  'P2pNcclConnector',
  'MooncakeConnector',
  'LMCacheConnectorV1',
] as const;

/** One of {@link VLLM_KV_CONNECTORS}. */
export type VllmKvConnectorName = (typeof VLLM_KV_CONNECTORS)[number];

/**
 * True when `name` is a vLLM-native KV connector. Omni connector classes (`SharedMemoryConnector`,
 * `MooncakeStoreConnector`, `MooncakeTransferEngineConnector`, `YuanrongConnector`, ...) are not:
 * they move stage outputs between omni workers and have no `--kv-transfer-config` form. Note that
 * vllm-omni also exports an alias `MooncakeConnector = MooncakeStoreConnector`; here the name means
 * vLLM's P2P `MooncakeConnector`.
 */
export function isVllmKvConnector(name: string): name is VllmKvConnectorName {
  return (VLLM_KV_CONNECTORS as readonly string[]).includes(name);
}

/** Options of {@link vllmKvTransferConfig}. */
export interface VllmKvTransferOptions {
  /** Connector class from the edge spec. */
  connector: string;
  /** This replica's side of the edge. */
  role: 'sender' | 'receiver';
  stageId: number;
  replicaId: number;
  /** Position of this replica in the edge's transfer group (senders first); becomes `kv_rank`. */
  replicaIndexInEdge: number;
  /** Instances in the transfer group (`kv_parallel_size`; 2 for 1P1D). */
  kvParallelSize: number;
  /** From {@link allocateKvPorts}: the ports reserved for every replica on this host. */
  ports: ReadonlyMap<string, KvPortAssignment>;
  /** Address other instances reach this one at (`kv_ip`, NIXL side-channel host). Default 127.0.0.1. */
  host?: string;
  /**
   * The edge's `extra`; becomes `kv_connector_extra_config`. P2pNccl's `proxy_ip`, `proxy_port`
   * and `http_port` (which must equal the replica's `--port`) go here; so do NIXL `backends`.
   */
  extra?: Record<string, unknown>;
}

/** `--kv-transfer-config` JSON plus the environment the replica needs. */
export interface VllmKvTransfer {
  kvTransferConfig: Record<string, unknown>;
  env: Record<string, string>;
}

/**
 * The `--kv-transfer-config` of one replica of a KV-connected LLM stage on the `vllm` engine, or
 * null when the connector is not a vLLM-native one ({@link isVllmKvConnector}): omni connectors are
 * configured through `omni_kv_config` instead.
 *
 * - `kv_role`: sender → `kv_producer`, receiver → `kv_consumer`; `NixlConnector` → `kv_both`,
 *   because with NIXL the proxy, not the flag, decides who prefills (vLLM NIXL docs).
 * - `kv_rank` = `replicaIndexInEdge` (1P1D: sender 0, receiver 1), `kv_parallel_size`.
 * - `kv_ip` = host, `kv_port` = the replica's reserved `kv_port`.
 * - env: NIXL gets `VLLM_NIXL_SIDE_CHANNEL_PORT` (its DP ranks add their rank, inside the reserved
 *   block) and `VLLM_NIXL_SIDE_CHANNEL_HOST`; Mooncake gets `VLLM_MOONCAKE_BOOTSTRAP_PORT`
 *   (base + dp_rank × tp + tp_rank, same block). P2pNccl and LMCache need no env.
 */
export function vllmKvTransferConfig(opts: VllmKvTransferOptions): VllmKvTransfer | null {
  if (!isVllmKvConnector(opts.connector)) return null;
  const where = { stage_id: opts.stageId, replica_id: opts.replicaId };
  if ((opts.role as string) !== 'sender' && (opts.role as string) !== 'receiver') {
    throw new OmniError(
      'OMNI_CONFIG_CONNECTOR',
      `KV connector role must be 'sender' or 'receiver', got '${String(opts.role)}'.`,
      {
        context: where,
      },
    );
  }
  if (!Number.isSafeInteger(opts.kvParallelSize) || opts.kvParallelSize < 1) {
    throw new OmniError(
      'OMNI_INTERNAL',
      `kv_parallel_size must be a positive integer, got ${String(opts.kvParallelSize)}.`,
      {
        context: where,
      },
    );
  }
  if (
    !Number.isSafeInteger(opts.replicaIndexInEdge) ||
    opts.replicaIndexInEdge < 0 ||
    opts.replicaIndexInEdge >= opts.kvParallelSize
  ) {
    throw new OmniError(
      'OMNI_INTERNAL',
      `kv_rank ${String(opts.replicaIndexInEdge)} is outside the transfer group of ${opts.kvParallelSize} instances.`,
      { context: where },
    );
  }
  const ports = opts.ports.get(kvPortKey(opts.stageId, opts.replicaId));
  if (ports === undefined) {
    throw new OmniError(
      'OMNI_INTERNAL',
      `No KV ports were reserved for ${replicaLabel({ stage_id: opts.stageId, replica_id: opts.replicaId })}.`,
      {
        hint: 'Reserve ports for every replica with allocateKvPorts before building its kv-transfer-config.',
        context: where,
      },
    );
  }
  const host = opts.host ?? '127.0.0.1';
  const kvRole =
    opts.connector === 'NixlConnector' ? 'kv_both' : opts.role === 'sender' ? 'kv_producer' : 'kv_consumer';

  const kvTransferConfig: Record<string, unknown> = {
    kv_connector: opts.connector,
    kv_role: kvRole,
    kv_rank: opts.replicaIndexInEdge,
    kv_parallel_size: opts.kvParallelSize,
    kv_ip: host,
    kv_port: ports.kv_port,
    kv_connector_extra_config: { ...(opts.extra ?? {}) },
  };

  const env: Record<string, string> = {};
  if (opts.connector === 'NixlConnector') {
    env.VLLM_NIXL_SIDE_CHANNEL_PORT = String(ports.side_channel_port);
    env.VLLM_NIXL_SIDE_CHANNEL_HOST = host;
  } else if (opts.connector === 'MooncakeConnector') {
    // Only the prefiller serves the bootstrap port, but the block is reserved either way and a
    // consumer that ignores the variable is unaffected.
    env.VLLM_MOONCAKE_BOOTSTRAP_PORT = String(ports.side_channel_port);
  }
  return { kvTransferConfig, env };
}
