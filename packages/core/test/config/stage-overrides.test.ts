import { describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { at, rejection, upstream, where, yaml, testRegistry } from './helpers.js';

const legacy = yaml`
  stage_args:
    - stage_id: 0
      runtime:
        devices: "0"
        env: { KEEP: 1, REPLACE: 1 }
      engine_args:
        max_num_seqs: 1
        hf_overrides: { a: 1 }
      default_sampling_params: { temperature: 0.1, top_k: 5 }
    - stage_id: 3
      engine_input_source: [0]
`;

const load = (stageOverrides: string) => loadPipelineConfig({ text: legacy, path: '/cfg/p.yaml' }, { stageOverrides });

describe('--stage-overrides', () => {
  it('applies JSON overrides: runtime keys to runtime (env too), engine to the stage, the rest to engine_args', async () => {
    const config = await load(
      '{"0": {"devices": "1,2", "num_replicas": 2, "env": {"REPLACE": 2, "NEW": true}, "restart": {"policy": "on-failure"}, ' +
        '"engine": "vllm", "max_num_seqs": 8, "default_sampling_params": {"top_k": 50}, "engine_args": {"hf_overrides": {"b": 2}}}}',
    );
    const s0 = config.stages[0]!;
    expect(s0.runtime).toMatchObject({
      devices: '1,2',
      num_replicas: 2,
      env: { KEEP: '1', REPLACE: '2', NEW: 'True' },
      restart: { policy: 'on-failure', max_restarts: 3, backoff_ms: 500 },
    });
    expect(s0.engine).toBe('vllm');
    expect(s0.engine_args).toEqual({ max_num_seqs: 8, hf_overrides: { a: 1, b: 2 }, async_chunk: false });
    // upstream #3900 put env into engine_args; here it must not be there
    expect(s0.engine_args).not.toHaveProperty('env');
    expect(s0.default_sampling_params).toEqual({ temperature: 0.1, top_k: 50 });
    expect(at(s0.locations.at('runtime.devices'))).toBe('<stage-overrides>:1:19');
    expect(at(s0.locations.at('engine_args.max_num_seqs'))).toBe('<stage-overrides>:1:152');
    expect(at(s0.locations.at('runtime.env.KEEP'))).toBe('p.yaml:5:20');
    expect(at(s0.locations.at('default_sampling_params.temperature'))).toBe('p.yaml:9:45');
  });

  it('accepts YAML, a nested runtime block, and stages without runtime/engine_args', async () => {
    const config = await load('3:\n  runtime: { devices: 4 }\n  gpu_memory_utilization: 0.5\n');
    const s3 = config.stages[1]!;
    expect(s3.runtime.devices).toBe('4');
    expect(s3.engine_args).toEqual({ gpu_memory_utilization: 0.5 });
    expect(at(s3.locations.at('engine_args.gpu_memory_utilization'))).toBe('<stage-overrides>:3:27');
    // other stages are untouched
    expect(config.stages[0]?.runtime.devices).toBe('0');
  });

  it('rejects an unknown stage id, listing the known ones', async () => {
    const err = await rejection(load('{"0": {}, "1": {"devices": "1"}}'));
    expect(err.code).toBe('OMNI_CONFIG_OVERRIDE_INVALID');
    expect(where(err)).toBe('<stage-overrides>:1:11');
    expect(err.message).toContain('stage `1`');
    expect(err.hint).toContain('Known stage ids: 0, 3.');
    const named = await rejection(load('{"stage_0": {}}'));
    expect([named.code, where(named)]).toEqual(['OMNI_CONFIG_OVERRIDE_INVALID', '<stage-overrides>:1:2']);
  });

  it('rejects wrong types at their position in the override text', async () => {
    const err = await rejection(load('{"3": {"num_replicas": "two"}}'));
    expect(err.code).toBe('OMNI_CONFIG_OVERRIDE_INVALID');
    expect(where(err)).toBe('<stage-overrides>:1:24');
    expect(err.message).toBe('`--stage-overrides 3.num_replicas` must be an integer, but it is the string "two".');
    const env = await rejection(load('0:\n  env:\n    A: [1]\n'));
    expect([env.code, where(env)]).toEqual(['OMNI_CONFIG_OVERRIDE_INVALID', '<stage-overrides>:3:8']);
    const nested = await rejection(load('0:\n  runtime:\n    num_replica: 2\n'));
    expect([nested.code, where(nested)]).toEqual(['OMNI_CONFIG_OVERRIDE_INVALID', '<stage-overrides>:3:5']);
    expect(nested.hint).toMatch(/^Did you mean `num_replicas`\?/);
  });

  it('rejects topology keys and malformed text', async () => {
    const topo = await rejection(load('{"3": {"engine_input_source": [1]}}'));
    expect([topo.code, where(topo)]).toEqual(['OMNI_CONFIG_OVERRIDE_INVALID', '<stage-overrides>:1:8']);
    const syntax = await rejection(load('{"0": {"devices" "1"}}'));
    expect([syntax.code, where(syntax)]).toEqual(['OMNI_CONFIG_OVERRIDE_INVALID', '<stage-overrides>:1:18']);
    const list = await rejection(load('[1, 2]'));
    expect([list.code, where(list)]).toEqual(['OMNI_CONFIG_OVERRIDE_INVALID', '<stage-overrides>:1:1']);
  });

  it('patches deploy stages after the platform overlay (highest precedence)', async () => {
    const config = await loadPipelineConfig(upstream('glm_image.yaml'), {
      platform: 'npu',
      pipelines: testRegistry(),
      pipeline: 'glm_image',
      stageOverrides: '{"0": {"tensor_parallel_size": 2, "devices": "4,5"}}',
    });
    expect(config.stages[0]?.engine_args.tensor_parallel_size).toBe(2);
    expect(config.stages[0]?.runtime.devices).toBe('4,5');
    expect(config.stages[0]?.runtime.env.HCCL_IF_BASE_PORT).toBe('23000');
  });

  it('a misspelt runtime or stage key is an error with did-you-mean at the key, not an engine arg', async () => {
    for (const [text, guess, col] of [
      ['{"0": {"devics": "3"}}', 'devices', 8],
      ['{"0": {"runtme": {"devices": "1"}}}', 'runtime', 8],
      ['{"0": {"default_sampling_param": {"top_k": 1}}}', 'default_sampling_params', 8],
    ] as const) {
      const err = await rejection(load(text));
      expect(err.code, text).toBe('OMNI_CONFIG_OVERRIDE_INVALID');
      expect(where(err), text).toBe(`<stage-overrides>:1:${col}`);
      expect(err.hint, text).toContain(`Did you mean \`${guess}\`?`);
    }
  });

  it('routes sampling parameters such as max_tokens to default_sampling_params', async () => {
    const config = await load('{"0": {"max_tokens": 50, "temperature": 0.5}}');
    const s0 = config.stages[0]!;
    expect(s0.default_sampling_params).toEqual({ temperature: 0.5, top_k: 5, max_tokens: 50 });
    expect(s0.engine_args).not.toHaveProperty('max_tokens');
    expect(at(s0.locations.at('default_sampling_params.max_tokens'))).toBe('<stage-overrides>:1:22');
  });
});

describe('runtime.restart', () => {
  const withRestart = (restart: string) =>
    loadPipelineConfig({
      text: `stage_args:\n  - stage_id: 0\n    runtime:\n      restart: ${restart}\n`,
      path: '/cfg/r.yaml',
    });

  it('accepts the docker-compose string form `on-failure` (and `never`) as the policy with its defaults', async () => {
    const config = await withRestart('on-failure');
    expect(config.stages[0]?.runtime.restart).toEqual({ policy: 'on-failure', max_restarts: 3, backoff_ms: 500 });
    expect((await withRestart('never')).stages[0]?.runtime.restart.policy).toBe('never');
  });

  it('a wrong string names both forms in the hint', async () => {
    const err = await rejection(withRestart('always'));
    expect(where(err)).toBe('r.yaml:4:16');
    expect(err.hint).toContain('on-failure');
    expect(err.hint).toContain('{ policy: on-failure, max_restarts: 3');
  });
});
