import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SHM_THRESHOLD_BYTES, loadOmniTransferConfig } from '../src/transfer-config.js';
import { edgeKey } from '../src/types.js';
import { QWEN_CONNECTORS, pipeline, qwenMulticonnector, stage, thrown } from './helpers.js';

const SHM = { name: 'SharedMemoryConnector', extra: { shm_threshold_bytes: 65536 } };

describe('loadOmniTransferConfig', () => {
  it('resolves named references on both ends of each edge (qwen2_5_omni_multiconnector)', () => {
    const p = qwenMulticonnector();
    const cfg = loadOmniTransferConfig(p);
    expect(cfg).not.toBeNull();
    expect([...cfg!.edges.keys()]).toEqual(['0->1', '1->2']);
    for (const edge of cfg!.edges.values()) {
      expect(edge.spec).toEqual(QWEN_CONNECTORS.mooncake_connector);
      expect(edge.auto).toBe(false);
    }
    const e01 = cfg!.edges.get(edgeKey(0, 1))!;
    expect(e01.from).toBe('0');
    expect(e01.to).toBe('1');
    // Every declaration is kept, in parse order, each with its own YAML location.
    expect(e01.declarations.map((d) => [d.source, d.stage_id, d.path, d.connector_ref])).toEqual([
      ['output_connectors', 0, 'output_connectors.to_stage_1', 'mooncake_connector'],
      ['input_connectors', 1, 'input_connectors.from_stage_0', 'mooncake_connector'],
      ['edges', null, 'edges.0', null],
      ['engine_input_source', 1, 'engine_input_source.0', null],
    ]);
    const [s0, s1] = p.stages;
    expect(e01.declarations[0]!.location).toEqual(s0!.locations.at('output_connectors.to_stage_1'));
    expect(e01.declarations[1]!.location).toEqual(s1!.locations.at('input_connectors.from_stage_0'));
    expect(e01.declarations[2]!.location).toEqual(p.locations.at('edges.0'));
    expect(e01.declarations[1]!.location).not.toEqual(e01.declarations[0]!.location);
  });

  it('copies extra so that the config and the edges never share it', () => {
    const p = qwenMulticonnector();
    const cfg = loadOmniTransferConfig(p)!;
    const a = cfg.edges.get('0->1')!.spec.extra;
    const b = cfg.edges.get('1->2')!.spec.extra;
    expect(a).not.toBe(p.connectors.mooncake_connector!.extra);
    expect(a).not.toBe(b);
  });

  it('accepts inline {name, extra} references', () => {
    const p = pipeline({
      stages: [
        stage({ stage_id: 0, output_connectors: { to_stage_1: { name: 'YuanrongConnector', extra: { port: '1' } } } }),
        stage({ stage_id: 1, input_connectors: { from_stage_0: { name: 'YuanrongConnector', extra: { port: '2' } } } }),
      ],
    });
    const edge = loadOmniTransferConfig(p)!.edges.get('0->1')!;
    // First declaration wins (upstream): the sender's extra.
    expect(edge.spec).toEqual({ name: 'YuanrongConnector', extra: { port: '1' } });
    expect(edge.declarations.map((d) => d.connector_ref)).toEqual([null, null]);
  });

  it('fills extra {} for an inline spec without extra', () => {
    const p = pipeline({
      stages: [
        stage({ stage_id: 1, input_connectors: { from_stage_0: { name: 'X' } as never } }),
        stage({ stage_id: 0 }),
      ],
    });
    expect(loadOmniTransferConfig(p)!.edges.get('0->1')!.spec).toEqual({ name: 'X', extra: {} });
  });

  it('reports an undefined connector at the reference, with a did-you-mean and the connectors block', () => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      stages: [stage({ stage_id: 0 }), stage({ stage_id: 1, input_connectors: { from_stage_0: 'mooncake_conector' } })],
    });
    const err = thrown(() => loadOmniTransferConfig(p));
    expect(err).toBeInstanceOf(OmniError);
    const e = err as OmniError;
    expect(e.code).toBe('OMNI_CONFIG_CONNECTOR');
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain("'mooncake_conector'");
    expect(e.location).toEqual(p.stages[1]!.locations.at('input_connectors.from_stage_0'));
    expect(e.related).toEqual([p.locations.at('connectors')]);
    expect(e.hint).toContain("Did you mean 'mooncake_connector'?");
    expect(e.context.stage_id).toBe(1);
  });

  it('explains an undefined connector when no connector is defined at all', () => {
    const p = pipeline({
      stages: [stage({ stage_id: 0, output_connectors: { to_stage_1: 'shm' } }), stage({ stage_id: 1 })],
    });
    const e = thrown(() => loadOmniTransferConfig(p)) as OmniError;
    expect(e.code).toBe('OMNI_CONFIG_CONNECTOR');
    expect(e.location).toEqual(p.stages[0]!.locations.at('output_connectors.to_stage_1'));
    expect(e.related).toEqual([]);
    expect(e.hint).toMatch(/No connectors are defined/);
  });

  it('does not resolve names through the prototype chain', () => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      stages: [stage({ stage_id: 0, output_connectors: { to_stage_1: 'constructor' } }), stage({ stage_id: 1 })],
    });
    expect((thrown(() => loadOmniTransferConfig(p)) as OmniError).code).toBe('OMNI_CONFIG_CONNECTOR');
  });

  it('reports two ends of one edge naming different classes, with both locations', () => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      stages: [
        stage({ stage_id: 0, output_connectors: { to_stage_1: 'mooncake_connector' } }),
        stage({ stage_id: 1, input_connectors: { from_stage_0: 'shared_memory_connector' } }),
      ],
    });
    const e = thrown(() => loadOmniTransferConfig(p)) as OmniError;
    expect(e.code).toBe('OMNI_CONFIG_CONNECTOR');
    expect(e.message).toContain('0->1');
    expect(e.message).toContain("'MooncakeStoreConnector'");
    expect(e.message).toContain("'SharedMemoryConnector'");
    expect(e.location).toEqual(p.stages[1]!.locations.at('input_connectors.from_stage_0'));
    expect(e.related).toEqual([p.stages[0]!.locations.at('output_connectors.to_stage_1')]);
  });

  it('accepts the same class on both ends even with different extra (first wins)', () => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      stages: [
        stage({ stage_id: 0, output_connectors: { to_stage_1: 'shared_memory_connector' } }),
        stage({
          stage_id: 1,
          input_connectors: { from_stage_0: { name: 'SharedMemoryConnector', extra: { shm_threshold_bytes: 1 } } },
        }),
      ],
    });
    expect(loadOmniTransferConfig(p)!.edges.get('0->1')!.spec.extra).toEqual({ shm_threshold_bytes: 65536 });
  });

  it.each([
    ['input_connectors', 'from_stage_x'],
    ['input_connectors', 'from_stage_'],
    ['input_connectors', 'from_stage_-1'],
    ['output_connectors', 'to_stage_1a'],
    ['input_connectors', 'to_stage_1'],
    ['output_connectors', 'stage_1'],
  ] as const)('rejects the malformed key %s.%s at its location', (side, key) => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      stages: [stage({ stage_id: 0, [side]: { [key]: 'mooncake_connector' } })],
    });
    const e = thrown(() => loadOmniTransferConfig(p)) as OmniError;
    expect(e.code).toBe('OMNI_CONFIG_CONNECTOR');
    expect(e.message).toContain(`'${key}'`);
    expect(e.location).toEqual(p.stages[0]!.locations.at(`${side}.${key}`));
  });

  it('points a from/to key under the wrong side to the other side', () => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      stages: [stage({ stage_id: 0, input_connectors: { to_stage_1: 'mooncake_connector' } })],
    });
    expect((thrown(() => loadOmniTransferConfig(p)) as OmniError).hint).toContain('output_connectors');
  });

  it('rejects an inline spec without a class name or with a non-mapping extra', () => {
    const noName = pipeline({
      stages: [stage({ stage_id: 1, input_connectors: { from_stage_0: { extra: {} } as never } })],
    });
    expect((thrown(() => loadOmniTransferConfig(noName)) as OmniError).location).toEqual(
      noName.stages[0]!.locations.at('input_connectors.from_stage_0'),
    );
    const badExtra = pipeline({
      stages: [stage({ stage_id: 1, input_connectors: { from_stage_0: { name: 'X', extra: 3 } as never } })],
    });
    expect((thrown(() => loadOmniTransferConfig(badExtra)) as OmniError).code).toBe('OMNI_CONFIG_CONNECTOR');
  });

  it('adds shared-memory edges for engine_input_source without a connector', () => {
    const p = pipeline({
      stages: [
        stage({ stage_id: 0 }),
        stage({ stage_id: 1, engine_input_source: [0] }),
        stage({ stage_id: 2, engine_input_source: [0, 1] }),
      ],
    });
    const cfg = loadOmniTransferConfig(p)!;
    expect([...cfg.edges.keys()]).toEqual(['0->1', '0->2', '1->2']);
    for (const e of cfg.edges.values()) {
      expect(e.spec).toEqual(SHM);
      expect(e.auto).toBe(true);
    }
    expect(DEFAULT_SHM_THRESHOLD_BYTES).toBe(65536);
    const d = cfg.edges.get('1->2')!.declarations;
    expect(d).toHaveLength(1);
    expect(d[0]!.location).toEqual(p.stages[2]!.locations.at('engine_input_source.1'));
  });

  it('adds shared-memory edges for pipeline edges without a connector, before engine_input_source ones', () => {
    const p = pipeline({
      edges: [{ from: 1, to: 2 }],
      stages: [stage({ stage_id: 0 }), stage({ stage_id: 1, engine_input_source: [0] }), stage({ stage_id: 2 })],
    });
    const cfg = loadOmniTransferConfig(p)!;
    expect([...cfg.edges.keys()]).toEqual(['1->2', '0->1']);
    expect(cfg.edges.get('1->2')!.spec).toEqual(SHM);
    expect(cfg.edges.get('1->2')!.declarations[0]!.location).toEqual(p.locations.at('edges.0'));
  });

  it('does not replace an explicit connector by an auto edge', () => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      edges: [{ from: 0, to: 1 }],
      stages: [
        stage({ stage_id: 0 }),
        stage({ stage_id: 1, engine_input_source: [0], input_connectors: { from_stage_0: 'yuanrong_connector' } }),
      ],
    });
    const edge = loadOmniTransferConfig(p)!.edges.get('0->1')!;
    expect(edge.spec.name).toBe('YuanrongConnector');
    expect(edge.auto).toBe(false);
  });

  it('keeps insertion order: stage by stage, inputs before outputs, then edges, then engine_input_source', () => {
    const p = pipeline({
      connectors: QWEN_CONNECTORS,
      edges: [{ from: 3, to: 4 }],
      stages: [
        stage({
          stage_id: 2,
          input_connectors: { from_stage_1: 'yuanrong_connector' },
          output_connectors: { to_stage_0: 'yuanrong_connector', to_stage_3: 'yuanrong_connector' },
        }),
        stage({
          stage_id: 1,
          input_connectors: { from_stage_9: 'yuanrong_connector', from_stage_10: 'yuanrong_connector' },
        }),
        stage({ stage_id: 5, engine_input_source: [4] }),
      ],
    });
    expect([...loadOmniTransferConfig(p)!.edges.keys()]).toEqual([
      '1->2',
      '2->0',
      '2->3',
      '9->1',
      '10->1',
      '3->4',
      '4->5',
    ]);
  });

  it('returns null when there is no edge at all', () => {
    expect(
      loadOmniTransferConfig(
        pipeline({ connectors: QWEN_CONNECTORS, stages: [stage({ stage_id: 0 }), stage({ stage_id: 1 })] }),
      ),
    ).toBeNull();
  });
});
