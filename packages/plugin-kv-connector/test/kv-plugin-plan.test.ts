/**
 * The KV plugin inside a real plan: connected `vllm` stages get a per-replica
 * `--kv-transfer-config` whose ports never collide on the host, and the transfer-config errors
 * are config errors at their YAML lines.
 */
import { Omnistage, isOmniError, loadPipelineConfig, planPipeline, planToJson } from '@omnistage/core';
import { llmPlugin } from '@omnistage/plugin-llm';
import { describe, expect, it } from 'vitest';
import { kvConnectorPlugin } from '../src/index.js';

const PIPELINE = `
model: facebook/opt-125m
connectors:
  nixl: { name: NixlConnector, extra: { backends: [UCX] } }
stages:
  - stage_id: 0
    devices: "0,1"
    num_replicas: 2
    output_connectors: { to_stage_1: nixl }
    stage_type: llm
  - stage_id: 1
    devices: "2,3"
    num_replicas: 2
    input_connectors: { from_stage_0: nixl }
    engine_input_source: [0]
    final_output: true
`;

async function plan(text: string) {
  const omni = new Omnistage({ plugins: [llmPlugin(), kvConnectorPlugin()] });
  const config = await loadPipelineConfig({ text, path: '/virtual/kv.yaml' }, { platform: 'cpu' });
  return planToJson(await planPipeline(omni, config, { platform: 'cpu', env: {} }));
}

type JsonReplica = { replica_id: number; worker: { args: string[]; env: Record<string, string> } };

function kvConfigs(
  json: Record<string, unknown>,
): { stage: number; replica: number; kv: Record<string, unknown>; env: Record<string, string> }[] {
  const stages = json['stages'] as { stage_id: number; replicas: JsonReplica[] }[];
  return stages.flatMap((s) =>
    s.replicas.map((r) => {
      const i = r.worker.args.indexOf('--kv-transfer-config');
      expect(i, `stage ${s.stage_id} replica ${r.replica_id} has --kv-transfer-config`).toBeGreaterThan(-1);
      return {
        stage: s.stage_id,
        replica: r.replica_id,
        kv: JSON.parse(r.worker.args[i + 1]!) as Record<string, unknown>,
        env: r.worker.env,
      };
    }),
  );
}

describe('kv plugin in a plan', () => {
  it('gives every connected vllm replica its own --kv-transfer-config with distinct ports', async () => {
    const all = kvConfigs(await plan(PIPELINE));
    expect(all).toHaveLength(4);
    for (const c of all) {
      expect(c.kv['kv_connector']).toBe('NixlConnector');
      expect(c.kv['kv_parallel_size']).toBe(4);
      expect(c.kv['kv_connector_extra_config']).toMatchObject({ backends: ['UCX'] });
    }
    expect(new Set(all.map((c) => c.kv['kv_rank'])).size).toBe(4);
    const ports = all.flatMap((c) => [Number(c.kv['kv_port']), Number(c.env['VLLM_NIXL_SIDE_CHANNEL_PORT'])]);
    expect(ports.every((p) => Number.isInteger(p) && p > 0)).toBe(true);
    expect(new Set(ports).size).toBe(ports.length);
  });

  it('an undefined connector name is a config error at its YAML line', async () => {
    const err = await plan(PIPELINE.replace('from_stage_0: nixl', 'from_stage_0: nixel')).catch((e: unknown) => e);
    expect(isOmniError(err)).toBe(true);
    if (!isOmniError(err)) return;
    expect(err.code).toBe('OMNI_CONFIG_CONNECTOR');
    expect(err.location?.line).toBe(14);
    expect(`${err.message} ${err.hint}`).toContain('nixl');
  });

  it('omni connectors (shared memory) produce no vLLM kv-transfer-config but an omni_kv_config', async () => {
    const json = await plan(PIPELINE.replace('name: NixlConnector', 'name: SharedMemoryConnector'));
    const stages = json['stages'] as {
      replicas: { worker: { args: string[] }; engine_args: Record<string, unknown> }[];
    }[];
    for (const s of stages) {
      for (const r of s.replicas) {
        expect(r.worker.args).not.toContain('--kv-transfer-config');
        expect((r.engine_args['omni_kv_config'] as Record<string, unknown>)['connector_config']).toMatchObject({
          type: 'SharedMemoryConnector',
        });
      }
    }
  });
});
