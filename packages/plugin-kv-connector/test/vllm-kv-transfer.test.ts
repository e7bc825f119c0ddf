import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { allocateKvPorts, kvPortKey } from '../src/kv-ports.js';
import type { KvPortRequest } from '../src/kv-ports.js';
import { isVllmKvConnector, vllmKvTransferConfig } from '../src/vllm-kv-transfer.js';
import type { VllmKvTransferOptions } from '../src/vllm-kv-transfer.js';
import { thrown } from './helpers.js';

const ports = allocateKvPorts(
  [
    { stage_id: 0, replica_id: 0, dp_size: 1 },
    { stage_id: 1, replica_id: 0, dp_size: 2 },
  ],
  20000,
);

function opts(over: Partial<VllmKvTransferOptions>): VllmKvTransferOptions {
  return {
    connector: 'P2pNcclConnector',
    role: 'sender',
    stageId: 0,
    replicaId: 0,
    replicaIndexInEdge: 0,
    kvParallelSize: 2,
    ports,
    ...over,
  };
}

/** Every port a replica may bind: both blocks. */
function portsOf(a: { kv_port: number; side_channel_port: number; block_size: number }): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.block_size; i++) out.push(a.kv_port + i, a.side_channel_port + i);
  return out;
}

describe('vllmKvTransferConfig', () => {
  it('P2pNccl 1P1D: producer rank 0, consumer rank 1, extra passed through', () => {
    const extra = { proxy_ip: '10.0.0.1', proxy_port: '30001', http_port: '8100' };
    const p = vllmKvTransferConfig(opts({ extra, host: '10.0.0.2' }))!;
    expect(p.kvTransferConfig).toEqual({
      kv_connector: 'P2pNcclConnector',
      kv_role: 'kv_producer',
      kv_rank: 0,
      kv_parallel_size: 2,
      kv_ip: '10.0.0.2',
      kv_port: 20000,
      kv_connector_extra_config: extra,
    });
    expect(p.kvTransferConfig.kv_connector_extra_config).not.toBe(extra);
    expect(p.env).toEqual({});
    const d = vllmKvTransferConfig(opts({ role: 'receiver', stageId: 1, replicaIndexInEdge: 1 }))!;
    expect(d.kvTransferConfig).toMatchObject({
      kv_role: 'kv_consumer',
      kv_rank: 1,
      kv_ip: '127.0.0.1',
      kv_port: 20002,
    });
  });

  it('NixlConnector: kv_both for both sides, side channel port and host in env', () => {
    const p = vllmKvTransferConfig(opts({ connector: 'NixlConnector', extra: { backends: ['UCX'] }, host: 'node-a' }))!;
    expect(p.kvTransferConfig).toMatchObject({
      kv_connector: 'NixlConnector',
      kv_role: 'kv_both',
      kv_connector_extra_config: { backends: ['UCX'] },
    });
    expect(p.env).toEqual({ VLLM_NIXL_SIDE_CHANNEL_PORT: '20001', VLLM_NIXL_SIDE_CHANNEL_HOST: 'node-a' });
    const d = vllmKvTransferConfig(
      opts({ connector: 'NixlConnector', role: 'receiver', stageId: 1, replicaIndexInEdge: 1 }),
    )!;
    expect(d.kvTransferConfig.kv_role).toBe('kv_both');
    expect(d.env).toEqual({ VLLM_NIXL_SIDE_CHANNEL_PORT: '20004', VLLM_NIXL_SIDE_CHANNEL_HOST: '127.0.0.1' });
  });

  it('MooncakeConnector: producer/consumer with a bootstrap port', () => {
    const p = vllmKvTransferConfig(opts({ connector: 'MooncakeConnector' }))!;
    expect(p.kvTransferConfig).toMatchObject({ kv_connector: 'MooncakeConnector', kv_role: 'kv_producer' });
    expect(p.env).toEqual({ VLLM_MOONCAKE_BOOTSTRAP_PORT: '20001' });
    const d = vllmKvTransferConfig(opts({ connector: 'MooncakeConnector', role: 'receiver', replicaIndexInEdge: 1 }))!;
    expect(d.kvTransferConfig.kv_role).toBe('kv_consumer');
  });

  it('LMCacheConnectorV1: producer/consumer, no env', () => {
    const p = vllmKvTransferConfig(opts({ connector: 'LMCacheConnectorV1', role: 'receiver', replicaIndexInEdge: 1 }))!;
    expect(p.kvTransferConfig).toMatchObject({
      kv_connector: 'LMCacheConnectorV1',
      kv_role: 'kv_consumer',
      kv_rank: 1,
    });
    expect(p.env).toEqual({});
  });

  it.each([
    'SharedMemoryConnector',
    'MooncakeStoreConnector',
    'MooncakeTransferEngineConnector',
    'YuanrongConnector',
    'Nope',
  ])('returns null for the omni connector %s', (connector) => {
    expect(isVllmKvConnector(connector)).toBe(false);
    expect(vllmKvTransferConfig(opts({ connector }))).toBeNull();
  });

  it('rejects a replica without reserved ports, a bad role and a kv_rank outside the group', () => {
    expect((thrown(() => vllmKvTransferConfig(opts({ replicaId: 3 }))) as OmniError).code).toBe('OMNI_INTERNAL');
    expect(thrown(() => vllmKvTransferConfig(opts({ role: 'auto' as never })))).toBeInstanceOf(OmniError);
    expect(thrown(() => vllmKvTransferConfig(opts({ replicaIndexInEdge: 2 })))).toBeInstanceOf(OmniError);
    expect(thrown(() => vllmKvTransferConfig(opts({ kvParallelSize: 0 })))).toBeInstanceOf(OmniError);
  });

  it('gives 2 stages x 4 replicas distinct ports, with per-replica kv_rank from the edge index', () => {
    const replicas: KvPortRequest[] = [];
    for (const stageId of [0, 1])
      for (let r = 0; r < 4; r++) replicas.push({ stage_id: stageId, replica_id: r, dp_size: r + 1 });
    const all = allocateKvPorts(replicas, 30000);
    const seen = new Set<number>();
    for (const connector of ['NixlConnector', 'P2pNcclConnector'] as const) {
      const kvPorts = new Set<number>();
      const sideChannels = new Set<string>();
      for (const r of replicas) {
        const role = r.stage_id === 0 ? 'sender' : 'receiver';
        const index = r.stage_id * 4 + r.replica_id;
        const cfg = vllmKvTransferConfig({
          connector,
          role,
          stageId: r.stage_id,
          replicaId: r.replica_id,
          replicaIndexInEdge: index,
          kvParallelSize: 8,
          ports: all,
        })!;
        expect(cfg.kvTransferConfig.kv_rank).toBe(index);
        kvPorts.add(cfg.kvTransferConfig.kv_port as number);
        if (connector === 'NixlConnector') sideChannels.add(cfg.env.VLLM_NIXL_SIDE_CHANNEL_PORT!);
      }
      expect(kvPorts.size).toBe(8);
      if (connector === 'NixlConnector') expect(sideChannels.size).toBe(8);
    }
    // Every DP rank's side channel (base + dp_rank) and every kv port block are disjoint.
    for (const a of all.values())
      for (const port of portsOf(a)) {
        expect(seen.has(port)).toBe(false);
        seen.add(port);
      }
    expect(seen.size).toBe(2 * (1 + 2 + 3 + 4) * 2);
  });
});

describe('allocateKvPorts', () => {
  it('never gives two replicas a common port, for many replicas of mixed sizes', () => {
    const replicas: KvPortRequest[] = [];
    for (let s = 0; s < 12; s++) {
      for (let r = 0; r < 8; r++)
        replicas.push({ stage_id: s, replica_id: r, dp_size: 1 + ((s * 7 + r) % 4), tp_size: 1 + (r % 3) });
    }
    const all = allocateKvPorts(replicas, 40000);
    expect(all.size).toBe(replicas.length);
    const seen = new Set<number>();
    let expected = 0;
    for (const r of replicas) {
      const a = all.get(kvPortKey(r.stage_id, r.replica_id))!;
      expect(a.block_size).toBe(r.dp_size * (r.tp_size ?? 1));
      expected += 2 * a.block_size;
      for (const port of portsOf(a)) {
        expect(port).toBeGreaterThanOrEqual(40000);
        expect(port).toBeLessThanOrEqual(65535);
        seen.add(port);
      }
    }
    expect(seen.size).toBe(expected);
  });

  it('does not depend on the order of the requests', () => {
    const replicas: KvPortRequest[] = [
      { stage_id: 1, replica_id: 1, dp_size: 2 },
      { stage_id: 0, replica_id: 0, dp_size: 1 },
      { stage_id: 1, replica_id: 0, dp_size: 3 },
    ];
    expect([...allocateKvPorts(replicas, 100).entries()].sort()).toEqual(
      [...allocateKvPorts([...replicas].reverse(), 100).entries()].sort(),
    );
    expect(allocateKvPorts(replicas, 100).get('0:0')).toEqual({ kv_port: 100, side_channel_port: 101, block_size: 1 });
    expect(allocateKvPorts(replicas, 100).get('1:0')).toEqual({ kv_port: 102, side_channel_port: 105, block_size: 3 });
  });

  it('rejects a range past 65535, a bad base port, duplicates and bad sizes', () => {
    expect((thrown(() => allocateKvPorts([{ stage_id: 0, replica_id: 0, dp_size: 4 }], 65530)) as OmniError).code).toBe(
      'OMNI_CONFIG_INVALID',
    );
    expect(allocateKvPorts([{ stage_id: 0, replica_id: 0, dp_size: 3 }], 65530).get('0:0')!.side_channel_port).toBe(
      65533,
    );
    expect((thrown(() => allocateKvPorts([], 0)) as OmniError).code).toBe('OMNI_CONFIG_INVALID');
    const dup = [
      { stage_id: 0, replica_id: 0, dp_size: 1 },
      { stage_id: 0, replica_id: 0, dp_size: 1 },
    ];
    expect((thrown(() => allocateKvPorts(dup, 100)) as OmniError).code).toBe('OMNI_INTERNAL');
    expect(thrown(() => allocateKvPorts([{ stage_id: 0, replica_id: 0, dp_size: 0 }], 100))).toBeInstanceOf(OmniError);
  });
});
