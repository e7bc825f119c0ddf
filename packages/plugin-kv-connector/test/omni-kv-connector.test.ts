import { describe, expect, it } from 'vitest';
import { resolveOmniKvConfigForStage } from '../src/omni-kv-connector.js';
import { loadOmniTransferConfig } from '../src/transfer-config.js';
import { QWEN_CONNECTORS, pipeline, qwenMulticonnector, stage } from './helpers.js';

const inline = (name: string, extra: Record<string, unknown> = {}) => ({ name, extra });

describe('resolveOmniKvConfigForStage', () => {
  it('prefers the outgoing edge with the smallest target, numerically (9 before 10)', () => {
    const p = pipeline({
      stages: [
        stage({ stage_id: 0, output_connectors: { to_stage_10: inline('Ten'), to_stage_9: inline('Nine', { a: 1 }) } }),
      ],
    });
    expect(resolveOmniKvConfigForStage(loadOmniTransferConfig(p), 0)).toEqual([
      { type: 'Nine', a: 1, role: 'sender' },
      '0',
      '9',
    ]);
  });

  it('falls back to the incoming edge with the smallest source, role receiver', () => {
    const p = pipeline({
      stages: [
        stage({ stage_id: 11, input_connectors: { from_stage_10: inline('Ten'), from_stage_9: inline('Nine') } }),
      ],
    });
    expect(resolveOmniKvConfigForStage(loadOmniTransferConfig(p), 11)).toEqual([
      { type: 'Nine', role: 'receiver' },
      '9',
      '11',
    ]);
  });

  it('uses the outgoing edge of a middle stage (sender wins over receiver)', () => {
    const [cfg, from, to] = resolveOmniKvConfigForStage(loadOmniTransferConfig(qwenMulticonnector()), 1);
    expect(cfg).toEqual({
      type: 'MooncakeStoreConnector',
      ...QWEN_CONNECTORS.mooncake_connector!.extra,
      role: 'sender',
    });
    expect([from, to]).toEqual(['1', '2']);
    expect(resolveOmniKvConfigForStage(loadOmniTransferConfig(qwenMulticonnector()), '2')).toEqual([
      { type: 'MooncakeStoreConnector', ...QWEN_CONNECTORS.mooncake_connector!.extra, role: 'receiver' },
      '1',
      '2',
    ]);
  });

  it('keeps a role set in extra, and lets extra.type override the class like upstream', () => {
    const p = pipeline({
      stages: [stage({ stage_id: 0, output_connectors: { to_stage_1: inline('A', { role: 'receiver', type: 'B' }) } })],
    });
    expect(resolveOmniKvConfigForStage(loadOmniTransferConfig(p), 0)[0]).toEqual({ type: 'B', role: 'receiver' });
  });

  it('is [null, null, null] without a config or without edges for the stage', () => {
    expect(resolveOmniKvConfigForStage(null, 0)).toEqual([null, null, null]);
    expect(resolveOmniKvConfigForStage(loadOmniTransferConfig(qwenMulticonnector()), 5)).toEqual([null, null, null]);
  });

  it('returns a fresh config object', () => {
    const transfer = loadOmniTransferConfig(qwenMulticonnector());
    const [cfg] = resolveOmniKvConfigForStage(transfer, 0);
    cfg!.host = 'elsewhere';
    expect(transfer!.edges.get('0->1')!.spec.extra.host).toBe('127.0.0.1');
  });
});
