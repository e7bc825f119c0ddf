import { describe, expect, it } from 'vitest';
import { formatError } from '../../src/errors.js';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { at, rejection, where, yaml } from './helpers.js';

const load = (text: string) => loadPipelineConfig({ text, path: '/cfg/pipeline.yaml' });

describe('YAML syntax', () => {
  it('reports a syntax error as OMNI_CONFIG_PARSE at line:col', async () => {
    const err = await rejection(
      load(yaml`
        stage_args:
          - stage_id: 0
            runtime:
              devices: "0
      `),
    );
    expect(err.code).toBe('OMNI_CONFIG_PARSE');
    expect(where(err)).toBe('pipeline.yaml:5:1');
    expect(err.message).toContain('closing "quote');
    expect(err.hint).toBeTruthy();
  });

  it('reports bad indentation where it happens', async () => {
    const err = await rejection(
      load(yaml`
        stage_args:
          - stage_id: 0
            runtime:
              devices: "0"
             num_replicas: 1
      `),
    );
    expect(err.code).toBe('OMNI_CONFIG_PARSE');
    expect(where(err)).toBe('pipeline.yaml:5:1');
    expect(err.message).toContain('same column');
  });

  it('treats duplicate keys as errors, at the second key', async () => {
    const err = await rejection(
      load(yaml`
        stage_args:
          - stage_id: 0
            final_output: true
            final_output: false
      `),
    );
    expect(err.code).toBe('OMNI_CONFIG_PARSE');
    expect(where(err)).toBe('pipeline.yaml:4:5');
    expect(err.message).toContain('duplicate key `final_output`');
  });

  it('rejects a file that is not a map, or has no stages', async () => {
    expect((await rejection(load('- 1\n'))).code).toBe('OMNI_CONFIG_INVALID');
    expect((await rejection(load(''))).code).toBe('OMNI_CONFIG_INVALID');
    const err = await rejection(load('model: x\n'));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.message).toContain('neither `stage_args` nor `stages`');
  });
});

describe('unknown keys', () => {
  it('num_replica → OMNI_CONFIG_UNKNOWN_KEY at the key, suggesting num_replicas', async () => {
    const err = await rejection(
      load(yaml`
        stage_args:
          - stage_id: 0
            runtime:
              devices: "0"
              num_replica: 2
      `),
    );
    expect(err.code).toBe('OMNI_CONFIG_UNKNOWN_KEY');
    expect(where(err)).toBe('pipeline.yaml:5:7');
    expect(err.message).toBe('Unknown key `num_replica` in `stage_args[0].runtime`.');
    expect(err.hint).toMatch(/^Did you mean `num_replicas`\?/);
    // Deprecated keys are accepted but never suggested.
    expect(err.hint).not.toContain('max_batch_size');
    expect(formatError(err)).toContain('/cfg/pipeline.yaml:5:7: error OMNI_CONFIG_UNKNOWN_KEY');
  });

  it('at stage level and top level, with suggestions from that map', async () => {
    const stage = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
          stage_typ: llm
    `),
    );
    expect([stage.code, where(stage)]).toEqual(['OMNI_CONFIG_UNKNOWN_KEY', 'pipeline.yaml:3:5']);
    expect(stage.hint).toContain('`stage_type`');

    const top = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
      async_chunks: true
    `),
    );
    expect([top.code, where(top)]).toEqual(['OMNI_CONFIG_UNKNOWN_KEY', 'pipeline.yaml:3:1']);
    expect(top.message).toContain('at the top level');
    expect(top.hint).toContain('`async_chunk`');
  });

  it('inside connectors and edges', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
      runtime:
        connectors:
          shm:
            name: SharedMemoryConnector
            extras: {}
    `),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_UNKNOWN_KEY', 'pipeline.yaml:7:7']);
    expect(err.hint).toContain('`extra`');
  });

  it('passes unknown engine_args through', async () => {
    const config = await load(yaml`
      stage_args:
        - stage_id: 0
          engine_args:
            some_future_vllm_flag: [1, 2]
    `);
    expect(config.stages[0]?.engine_args).toEqual({ some_future_vllm_flag: [1, 2] });
    expect(at(config.stages[0]!.locations.at('engine_args.some_future_vllm_flag.1'))).toBe('pipeline.yaml:4:34');
  });

  it('reports the first of several problems in file order', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
          runtime:
            num_replicas: x
          bogus: 1
    `),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:4:21']);
    expect(err.message).toContain('1 more problem');
    expect(err.related.map((r) => `${r.line}:${r.col}`)).toEqual(['5:5']);
  });
});

describe('wrong types', () => {
  it('num_replicas: "x"', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
          runtime:
            num_replicas: "x"
    `),
    );
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(where(err)).toBe('pipeline.yaml:4:21');
    expect(err.message).toBe('`stage_args[0].runtime.num_replicas` must be an integer, but it is the string "x".');
    expect(err.hint).toContain('num_replicas: 2');
  });

  it('negative num_replicas', async () => {
    const err = await rejection(load('stage_args:\n  - stage_id: 0\n    runtime: { num_replicas: -1 }\n'));
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:3:30']);
    expect(err.message).toContain('must be ≥ 0');
  });

  it('missing stage_id points at the stage', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
        - stage_type: llm
    `),
    );
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(where(err)).toBe('pipeline.yaml:3:5');
    expect(err.message).toBe('`stage_args[1]` is missing the required key `stage_id`.');
    expect(err.hint).toContain('stage_id: 0');
  });

  it('engine_input_source must be a list of integers', async () => {
    const item = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
        - stage_id: 1
          engine_input_source: [0, "a"]
    `),
    );
    expect([item.code, where(item)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:4:30']);
    expect(item.message).toContain('`stage_args[1].engine_input_source[1]` must be an integer');
    const scalar = await rejection(load('stage_args:\n  - stage_id: 1\n    engine_input_source: 0\n'));
    expect([scalar.code, where(scalar)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:3:26']);
    expect(scalar.message).toContain('must be a list, but it is the number 0');
    expect(scalar.hint).toContain('engine_input_source: [0]');
  });

  it('devices as a YAML list', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
          runtime:
            devices: [0, 1]
    `),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:4:16']);
    expect(err.message).toBe('`stage_args[0].runtime.devices` must be a string or an integer, but it is a list.');
    expect(err.hint).toContain('devices: "0,1"');
  });

  it('connector reference of the wrong shape reports inside the matching union branch', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
          output_connectors:
            to_stage_1: { name: 5 }
    `),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:4:27']);
    expect(err.message).toContain('`stage_args[0].output_connectors.to_stage_1.name` must be a string');
  });

  it('restart policy with a typo suggests the right value', async () => {
    const err = await rejection(
      load('stage_args:\n  - stage_id: 0\n    runtime:\n      restart: { policy: on_failure }\n'),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:4:26']);
    expect(err.message).toContain('did you mean `on-failure`?');
  });

  it('deploy: typed engine field out of range and nested runtime unknown key', async () => {
    const range = await rejection(load('stages:\n  - stage_id: 0\n    gpu_memory_utilization: 1.5\n'));
    expect([range.code, where(range)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:3:29']);
    expect(range.message).toContain('must be ≤ 1');
    const key = await rejection(load('stages:\n  - stage_id: 0\n    runtime:\n      device: "0"\n'));
    expect([key.code, where(key)]).toEqual(['OMNI_CONFIG_UNKNOWN_KEY', 'pipeline.yaml:4:7']);
    expect(key.hint).toMatch(/^Did you mean `devices`\?/);
  });
});

describe('cross-stage references', () => {
  it('duplicate stage_id is reported at the second stage', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
        - stage_id: 1
        - stage_id: 1
    `),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:4:15']);
    expect(err.related.map(at)).toEqual(['pipeline.yaml:3:15']);
    expect(err.message).toContain('Duplicate stage_id 1');
  });

  it('duplicate stage_id in a deploy file', async () => {
    const err = await rejection(load('stages:\n  - stage_id: 3\n  - stage_id: 3\n'));
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:3:15']);
  });

  it('engine_input_source naming an unknown stage', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
        - stage_id: 1
          engine_input_source: [0, 7]
    `),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:4:30']);
    expect(err.message).toBe('Stage 1 takes input from stage 7, which does not exist (engine_input_source).');
    expect(err.hint).toContain('Known stage ids: 0, 1.');
  });

  it('undeclared connector name, with a suggestion', async () => {
    const err = await rejection(
      load(yaml`
      stage_args:
        - stage_id: 0
        - stage_id: 1
          engine_input_source: [0]
          input_connectors:
            from_stage_0: mooncake_conector
      runtime:
        connectors:
          mooncake_connector: { name: MooncakeStoreConnector }
    `),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_CONNECTOR', 'pipeline.yaml:6:21']);
    expect(err.hint).toMatch(/^Did you mean `mooncake_connector`\?/);
  });

  it('connector key naming a missing stage, and edges to unknown stages', async () => {
    const key = await rejection(
      load('stage_args:\n  - stage_id: 0\n    output_connectors:\n      to_stage_4: { name: SharedMemoryConnector }\n'),
    );
    expect([key.code, where(key)]).toEqual(['OMNI_CONFIG_CONNECTOR', 'pipeline.yaml:4:19']);
    const edge = await rejection(load('stage_args:\n  - stage_id: 0\nruntime:\n  edges:\n    - { from: 0, to: 2 }\n'));
    expect([edge.code, where(edge)]).toEqual(['OMNI_CONFIG_CONNECTOR', 'pipeline.yaml:5:22']);
  });
});

describe('edges against engine_input_source', () => {
  it('refuses an edge between stages that exchange no data', async () => {
    const text = yaml`
      stage_args:
        - stage_id: 0
        - stage_id: 1
          engine_input_source: [0]
        - stage_id: 2
          engine_input_source: [1]
      runtime:
        edges:
          - { from: 0, to: 1 }
          - { from: 0, to: 2 }
    `;
    const err = await rejection(load(text));
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_CONNECTOR', 'pipeline.yaml:10:7']);
    expect(err.message).toBe('Edge 1 (0 → 2) contradicts engine_input_source: stage 2 takes input from stage 1 only.');
    expect(err.hint).toContain('engine_input_source: [0, 1]');
  });
});

describe('legacy normalisation', () => {
  it('applies defaults, stringifies env like Python and keeps extras', async () => {
    const config = await load(yaml`
      model: Qwen/Qwen2.5-Omni-7B
      async_chunk: true
      plugins:
        - omnistage-plugin-tts
        - { path: ./local-plugin.js, options: { level: 2 } }
      stage_args:
        - stage_id: 4
          engine: reference
          runtime:
            devices: 1
            num_replicas: 0
            env: { A: true, B: false, C: null, D: 1.5, E: 7, F: text }
            restart: { policy: on-failure }
          tts_args: { voice: x }
        - stage_id: 9
          stage_type: diffusion
          runtime: {}
          engine_input_source: [4]
    `);
    const [a, b] = config.stages;
    expect(config.model).toBe('Qwen/Qwen2.5-Omni-7B');
    expect(config.plugins).toEqual([
      { specifier: 'omnistage-plugin-tts', options: {} },
      { specifier: '/cfg/local-plugin.js', options: { level: 2 } },
    ]);
    expect(at(config.locations.at('plugins.1'))).toBe('pipeline.yaml:5:5');
    expect(at(config.locations.at('model'))).toBe('pipeline.yaml:1:8');
    expect(a).toMatchObject({
      stage_idx: 0,
      stage_id: 4,
      stage_type: 'llm',
      engine: 'reference',
      final_output: false,
      is_comprehension: false,
    });
    expect(a?.runtime).toEqual({
      process: true,
      devices: '1',
      num_replicas: 0,
      min_ready: 1,
      env: { A: 'True', B: 'False', C: 'None', D: '1.5', E: '7', F: 'text' },
      requires_multimodal_data: false,
      restart: { policy: 'on-failure', max_restarts: 3, backoff_ms: 500 },
    });
    expect(a?.extras).toEqual({ tts_args: { voice: 'x' } });
    expect(a?.engine_args).toEqual({ async_chunk: true });
    expect(at(a!.locations.at('engine_args.async_chunk'))).toBe('pipeline.yaml:2:14');
    expect(at(a!.locations.at('engine'))).toBe('pipeline.yaml:8:13');
    // diffusion stages never get the copy
    expect(b?.engine_args).toEqual({});
    expect(b?.stage_idx).toBe(1);
  });

  it('rejects a plugin entry with both name and path', async () => {
    const err = await rejection(load('plugins:\n  - { name: a, path: ./b.js }\nstage_args:\n  - stage_id: 0\n'));
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:2:5']);
    expect(err.message).toContain('exactly one of `name`');
  });
});
