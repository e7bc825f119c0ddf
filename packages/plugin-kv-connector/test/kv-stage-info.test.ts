import { OmniError } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { injectKvStageInfo } from '../src/kv-stage-info.js';
import { resolveOmniKvConfigForStage } from '../src/omni-kv-connector.js';
import { loadOmniTransferConfig } from '../src/transfer-config.js';
import { deepFreeze, pipeline, stage, thrown } from './helpers.js';

const thinker = stage({
  stage_id: 0,
  engine_args: {
    tensor_parallel_size: 2,
    omni_kv_config: { need_send_cache: true, kv_transfer_criteria: { type: 'prefill_finished' } },
  },
  output_connectors: { to_stage_1: { name: 'MooncakeTransferEngineConnector', extra: { host: 'h' } } },
});
const dit = stage({
  stage_id: 1,
  stage_type: 'diffusion',
  engine_input_source: [0],
  engine_args: { parallel_config: { tensor_parallel_size: 4 }, omni_kv_config: { need_recv_cache: true } },
});
const stages = [thinker, dit];
const transfer = loadOmniTransferConfig(pipeline({ stages }));

describe('injectKvStageInfo', () => {
  it('LLM path: adds the resolved connector, stage id and TP topology without mutating anything', () => {
    deepFreeze(thinker.engine_args);
    deepFreeze(stages.map((s) => s.engine_input_source));
    const connector = deepFreeze(resolveOmniKvConfigForStage(transfer, 0));
    const out = injectKvStageInfo(thinker.engine_args, thinker, stages, { connector, withReceiverFallback: false });
    expect(out).not.toBe(thinker.engine_args);
    expect(out).toEqual({
      tensor_parallel_size: 2,
      omni_kv_config: {
        need_send_cache: true,
        kv_transfer_criteria: { type: 'prefill_finished' },
        connector_config: { type: 'MooncakeTransferEngineConnector', host: 'h', role: 'sender' },
        omni_from_stage: '0',
        omni_to_stage: '1',
        stage_id: 0,
        rank_mapping: { from_tp: 2, to_tp: 4 },
      },
    });
    expect((out.omni_kv_config as Record<string, unknown>).connector_config).not.toBe(connector[0]);
    expect(thinker.engine_args.omni_kv_config).toEqual({
      need_send_cache: true,
      kv_transfer_criteria: { type: 'prefill_finished' },
    });
  });

  it('diffusion path: receiver fallback through engine_input_source, which is also recorded', () => {
    deepFreeze(dit.engine_args);
    const out = injectKvStageInfo(dit.engine_args, dit, stages, { connector: null, withReceiverFallback: true });
    expect(out.omni_kv_config).toEqual({
      need_recv_cache: true,
      stage_id: 1,
      engine_input_source: [0],
      rank_mapping: { from_tp: 2, to_tp: 4 },
    });
    expect((out.omni_kv_config as Record<string, unknown>).engine_input_source).not.toBe(dit.engine_input_source);
  });

  it('without the receiver fallback a receiver that names no edge gets no rank_mapping', () => {
    const out = injectKvStageInfo(dit.engine_args, dit, stages, { connector: null, withReceiverFallback: false });
    expect(out.omni_kv_config).not.toHaveProperty('rank_mapping');
  });

  it('keeps existing stage_id and engine_input_source and overwrites omni_from/to_stage', () => {
    const args = deepFreeze({
      omni_kv_config: { stage_id: 'mine', engine_input_source: [9], omni_from_stage: 'x', need_recv_cache: true },
    });
    const out = injectKvStageInfo(args, dit, stages, {
      connector: [{ type: 'SharedMemoryConnector', role: 'receiver' }, '0', '1'],
      withReceiverFallback: true,
    });
    expect(out.omni_kv_config).toMatchObject({
      stage_id: 'mine',
      engine_input_source: [9],
      omni_from_stage: '0',
      omni_to_stage: '1',
    });
    expect((out.omni_kv_config as Record<string, unknown>).rank_mapping).toEqual({ from_tp: 2, to_tp: 4 });
  });

  it('creates omni_kv_config when only a connector was resolved', () => {
    const plain = stage({ stage_id: 2, engine_args: { max_num_seqs: 1 } });
    const out = injectKvStageInfo(plain.engine_args, plain, [plain], {
      connector: [{ type: 'X', role: 'sender' }, '2', '3'],
      withReceiverFallback: false,
    });
    expect(out).toEqual({
      max_num_seqs: 1,
      omni_kv_config: {
        connector_config: { type: 'X', role: 'sender' },
        omni_from_stage: '2',
        omni_to_stage: '3',
        stage_id: 2,
      },
    });
  });

  it('returns a copy of the engine args when there is nothing to inject', () => {
    const plain = stage({ stage_id: 2, engine_args: { max_num_seqs: 1 } });
    for (const connector of [null, [null, null, null] as [null, null, null]]) {
      const out = injectKvStageInfo(plain.engine_args, plain, [plain], { connector, withReceiverFallback: true });
      expect(out).toEqual({ max_num_seqs: 1 });
      expect(out).not.toBe(plain.engine_args);
    }
  });

  it('rejects an omni_kv_config that is not a mapping, at its location', () => {
    const bad = stage({ stage_id: 0, engine_args: { omni_kv_config: ['need_send_cache'] } }, [
      'engine_args.omni_kv_config',
    ]);
    const e = thrown(() =>
      injectKvStageInfo(bad.engine_args, bad, [bad], { connector: null, withReceiverFallback: true }),
    ) as OmniError;
    expect(e).toBeInstanceOf(OmniError);
    expect(e.code).toBe('OMNI_CONFIG_INVALID');
    expect(e.location).toEqual(bad.locations.at('engine_args.omni_kv_config'));
  });
});
