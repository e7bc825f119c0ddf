import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { injectInferredKvTpTopology, tpSizeForStage } from '../src/tp-topology.js';
import { deepFreeze, stage, thrown } from './helpers.js';

const stages = [
  stage({ stage_id: 0, engine_args: { tensor_parallel_size: 2 } }),
  stage({
    stage_id: 1,
    stage_type: 'diffusion',
    engine_args: { parallel_config: { tensor_parallel_size: 4 }, tensor_parallel_size: 8 },
  }),
  stage({ stage_id: 2, engine_args: {} }),
  stage({ stage_id: 3, engine_args: { tensor_parallel_size: null } }),
  stage({ stage_id: 4, engine_args: { tensor_parallel_size: '3' } }),
  stage({ stage_id: 5, engine_args: { tensor_parallel_size: 0 } }),
  stage({ stage_id: 6, engine_args: { parallel_config: { ulysses_degree: 2 } } }),
];

describe('tpSizeForStage', () => {
  it('reads tensor_parallel_size, preferring parallel_config, defaulting to 1', () => {
    expect(tpSizeForStage(stages, 0)).toBe(2);
    expect(tpSizeForStage(stages, 1)).toBe(4);
    expect(tpSizeForStage(stages, 2)).toBe(1);
    expect(tpSizeForStage(stages, 3)).toBe(1);
    expect(tpSizeForStage(stages, 4)).toBe(3);
    expect(tpSizeForStage(stages, 5)).toBe(1);
    expect(tpSizeForStage(stages, 6)).toBe(1);
  });

  it('matches string ids and returns null for unknown stages', () => {
    expect(tpSizeForStage(stages, '0')).toBe(2);
    expect(tpSizeForStage(stages, ' 1 ')).toBe(4);
    expect(tpSizeForStage(stages, 42)).toBeNull();
    expect(tpSizeForStage(stages, null)).toBeNull();
    expect(tpSizeForStage(stages, 'x')).toBeNull();
  });

  it('throws at the value when tensor_parallel_size is not an integer', () => {
    const bad = stage({ stage_id: 0, engine_args: { tensor_parallel_size: 'two' } }, [
      'engine_args.tensor_parallel_size',
    ]);
    const e = thrown(() => tpSizeForStage([bad], 0)) as OmniError;
    expect(e).toBeInstanceOf(OmniError);
    expect(e.code).toBe('OMNI_CONFIG_INVALID');
    expect(e.location).toEqual(bad.locations.at('engine_args.tensor_parallel_size'));
    expect(e.location).not.toEqual(bad.locations.at('engine_args'));
    expect(
      thrown(() => tpSizeForStage([stage({ stage_id: 0, engine_args: { tensor_parallel_size: 2.5 } })], 0)),
    ).toBeInstanceOf(OmniError);
    expect(
      thrown(() => tpSizeForStage([stage({ stage_id: 0, engine_args: { parallel_config: 'x' } })], 0)),
    ).toBeInstanceOf(OmniError);
  });
});

describe('injectInferredKvTpTopology', () => {
  it('infers from_tp/to_tp for a sender', () => {
    const out = injectInferredKvTpTopology(
      { need_send_cache: true, omni_from_stage: '0', omni_to_stage: '1' },
      0,
      stages,
    );
    expect(out).toEqual({
      need_send_cache: true,
      omni_from_stage: '0',
      omni_to_stage: '1',
      rank_mapping: { from_tp: 2, to_tp: 4 },
    });
  });

  it('infers from_tp/to_tp for a receiver', () => {
    const out = injectInferredKvTpTopology(
      { need_recv_cache: true, omni_from_stage: '4', omni_to_stage: '1' },
      1,
      stages,
    );
    expect(out!.rank_mapping).toEqual({ from_tp: 3, to_tp: 4 });
  });

  it('uses engine_input_source[0] as the sender only when given (receiver fallback)', () => {
    const kv = { need_recv_cache: true };
    expect(injectInferredKvTpTopology(kv, 1, stages, [0, 4])!.rank_mapping).toEqual({ from_tp: 2, to_tp: 4 });
    expect(injectInferredKvTpTopology(kv, 1, stages)).toEqual(kv);
    expect(injectInferredKvTpTopology(kv, 1, stages, [])).toEqual(kv);
    // The fallback is for receivers: a sender-only config does not use it.
    expect(injectInferredKvTpTopology({ need_send_cache: true }, 1, stages, [0])).not.toHaveProperty('rank_mapping');
  });

  it('keeps user-written rank_mapping keys', () => {
    const out = injectInferredKvTpTopology(
      { need_send_cache: true, omni_from_stage: 0, omni_to_stage: 1, rank_mapping: { from_tp: 8, extra: 'x' } },
      0,
      stages,
    );
    expect(out!.rank_mapping).toEqual({ from_tp: 8, to_tp: 4, extra: 'x' });
  });

  it.each([['auto'], [[1, 2]], [null], [7]])('replaces a rank_mapping that is not a mapping (%j)', (rankMapping) => {
    const out = injectInferredKvTpTopology(
      { need_send_cache: true, omni_from_stage: '0', omni_to_stage: '1', rank_mapping: rankMapping },
      0,
      stages,
    );
    expect(out!.rank_mapping).toEqual({ from_tp: 2, to_tp: 4 });
  });

  it('writes nothing when the peer or this stage is unknown, or nothing is sent or received', () => {
    const unknownPeer = { need_send_cache: true, omni_from_stage: '0', omni_to_stage: '77' };
    expect(injectInferredKvTpTopology(unknownPeer, 0, stages)).toEqual(unknownPeer);
    const unknownSelf = { need_send_cache: true, omni_from_stage: '99', omni_to_stage: '1' };
    expect(injectInferredKvTpTopology(unknownSelf, 99, stages)).toEqual(unknownSelf);
    const noFlags = { omni_from_stage: '0', omni_to_stage: '1' };
    expect(injectInferredKvTpTopology(noFlags, 0, stages)).toEqual(noFlags);
    const noRule = { need_send_cache: true, omni_from_stage: '2', omni_to_stage: '1' };
    expect(injectInferredKvTpTopology(noRule, 0, stages)).toEqual(noRule);
  });

  it('is pure: never mutates its input, returns a new object', () => {
    const kv = deepFreeze({
      need_send_cache: true,
      omni_from_stage: '0',
      omni_to_stage: '1',
      rank_mapping: { to_tp: 5 },
    });
    const out = injectInferredKvTpTopology(kv, 0, stages);
    expect(out).not.toBe(kv);
    expect(out!.rank_mapping).not.toBe(kv.rank_mapping);
    expect(out!.rank_mapping).toEqual({ from_tp: 2, to_tp: 5 });
    expect(kv.rank_mapping).toEqual({ to_tp: 5 });
  });

  it('returns null for null', () => {
    expect(injectInferredKvTpTopology(null, 0, stages)).toBeNull();
    expect(injectInferredKvTpTopology(undefined, 0, stages)).toBeNull();
  });

  it('rejects malformed shapes with the location of the value', () => {
    const s = stage({ stage_id: 0, engine_args: { tensor_parallel_size: 1 } }, [
      'engine_args.omni_kv_config',
      'engine_args.omni_kv_config.need_send_cache',
      'engine_args.omni_kv_config.rank_mapping.from_tp',
    ]);
    const notMap = thrown(() => injectInferredKvTpTopology('yes', 0, [s])) as OmniError;
    expect(notMap.code).toBe('OMNI_CONFIG_INVALID');
    expect(notMap.location).toEqual(s.locations.at('engine_args.omni_kv_config'));
    const flag = thrown(() => injectInferredKvTpTopology({ need_send_cache: 'false' }, 0, [s])) as OmniError;
    expect(flag.location).toEqual(s.locations.at('engine_args.omni_kv_config.need_send_cache'));
    const rank = thrown(() =>
      injectInferredKvTpTopology(
        { need_send_cache: true, omni_from_stage: 0, omni_to_stage: 0, rank_mapping: { from_tp: 0 } },
        0,
        [s],
      ),
    ) as OmniError;
    expect(rank.location).toEqual(s.locations.at('engine_args.omni_kv_config.rank_mapping.from_tp'));
  });
});
