import { describe, expect, it } from 'vitest';
import { getStageConnectorSpec, getStageConnectorsConfig } from '../src/stage-connector-spec.js';
import { loadOmniTransferConfig } from '../src/transfer-config.js';
import { QWEN_CONNECTORS, pipeline, qwenMulticonnector, stage } from './helpers.js';

const MOONCAKE = QWEN_CONNECTORS.mooncake_connector!;

describe('getStageConnectorSpec', () => {
  const transfer = loadOmniTransferConfig(qwenMulticonnector());

  it('gives stage 0 its outgoing edge with role sender', () => {
    expect(getStageConnectorSpec(transfer, 0, true)).toEqual({
      name: 'MooncakeStoreConnector',
      extra: { ...MOONCAKE.extra, role: 'sender' },
    });
  });

  it('gives other stages their first incoming edge with role receiver, not their outgoing one', () => {
    expect(getStageConnectorSpec(transfer, 1, true)).toEqual({
      name: 'MooncakeStoreConnector',
      extra: { ...MOONCAKE.extra, role: 'receiver' },
    });
  });

  it('is {} when async_chunk is off, without a transfer config, or for a stage without incoming edges', () => {
    expect(getStageConnectorSpec(transfer, 0, false)).toEqual({});
    expect(getStageConnectorSpec(transfer, 1, false)).toEqual({});
    expect(getStageConnectorSpec(null, 1, true)).toEqual({});
    expect(getStageConnectorSpec(transfer, 7, true)).toEqual({});
  });

  it('picks the first incoming edge in insertion order', () => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      stages: [
        stage({
          stage_id: 3,
          input_connectors: { from_stage_2: 'yuanrong_connector', from_stage_1: 'shared_memory_connector' },
        }),
      ],
    });
    const spec = getStageConnectorSpec(loadOmniTransferConfig(p), 3, true);
    expect(spec).toEqual({ name: 'YuanrongConnector', extra: { host: '127.0.0.1', port: '35000', role: 'receiver' } });
  });

  it('keeps a role written in the connector extra', () => {
    const p = pipeline({
      stages: [stage({ stage_id: 1, input_connectors: { from_stage_0: { name: 'X', extra: { role: 'custom' } } } })],
    });
    expect(getStageConnectorSpec(loadOmniTransferConfig(p), 1, true)).toEqual({ name: 'X', extra: { role: 'custom' } });
  });

  it('returns fresh objects and leaves the edge specs role-neutral', () => {
    const spec = getStageConnectorSpec(transfer, 1, true) as { extra: Record<string, unknown> };
    spec.extra.role = 'changed';
    expect(transfer!.edges.get('0->1')!.spec.extra).not.toHaveProperty('role');
    expect(getStageConnectorSpec(transfer, 1, true)).toMatchObject({ extra: { role: 'receiver' } });
  });
});

describe('getStageConnectorsConfig', () => {
  it('lists incoming edges for every stage and outgoing ones for stage 0 only', () => {
    const transfer = loadOmniTransferConfig(qwenMulticonnector());
    expect(Object.keys(getStageConnectorsConfig(transfer, 0))).toEqual(['to_stage_1']);
    expect(Object.keys(getStageConnectorsConfig(transfer, 1))).toEqual(['from_stage_0']);
    expect(Object.keys(getStageConnectorsConfig(transfer, 2))).toEqual(['from_stage_1']);
    expect(getStageConnectorsConfig(null, 0)).toEqual({});
  });
});
