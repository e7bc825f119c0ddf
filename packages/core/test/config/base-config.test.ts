import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { PipelineRegistry } from '../../src/config/pipelines.js';
import { at, memoryFs, rejection, testRegistry, where, yaml } from './helpers.js';

/** A three-stage llm chain 0 → 1 → 2 for the merged files below. */
const CHAIN3 = PipelineRegistry.of([
  {
    name: 'chain3',
    stages: [0, 1, 2].map((id) => ({
      stage_id: id,
      model_stage: `s${id}`,
      stage_type: 'llm',
      engine_input_source: id === 0 ? [] : [id - 1],
      final_output: id === 2,
    })),
  },
]);
const loadChain3 = (file: string) => loadPipelineConfig(file, { pipelines: CHAIN3, pipeline: 'chain3' });

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omnistage-base-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const write = (name: string, text: string) => writeFile(join(dir, name), text);

describe('base_config cycles', () => {
  it('detects a two-file cycle at the base_config that closes it', async () => {
    await write('a.yaml', 'base_config: b.yaml\nstages:\n  - stage_id: 0\n');
    await write('b.yaml', '# parent\nbase_config: ./a.yaml\nstages:\n  - stage_id: 0\n');
    const err = await rejection(loadPipelineConfig(join(dir, 'a.yaml')));
    expect(err.code).toBe('OMNI_CONFIG_BASE_CYCLE');
    expect(err.message).toBe('base_config files include each other: a.yaml → b.yaml → a.yaml.');
    expect(where(err)).toBe('b.yaml:2:14');
    expect(err.related.map(at)).toEqual(['a.yaml:1:14']);
    expect(err.hint).toContain('Remove base_config');
  });

  it('detects a file that names itself', async () => {
    await write('self.yaml', 'stages:\n  - stage_id: 0\nbase_config: self.yaml\n');
    const err = await rejection(loadPipelineConfig(join(dir, 'self.yaml')));
    expect(err.code).toBe('OMNI_CONFIG_BASE_CYCLE');
    expect(where(err)).toBe('self.yaml:3:14');
  });

  it('detects a longer cycle through a subdirectory', async () => {
    await write('top.yaml', 'base_config: mid.yaml\n');
    await write('mid.yaml', 'base_config: top.yaml\npipeline: bagel\n');
    await write('root.yaml', 'base_config: top.yaml\nstages:\n  - stage_id: 0\n');
    const err = await rejection(loadPipelineConfig(join(dir, 'root.yaml')));
    expect(err.code).toBe('OMNI_CONFIG_BASE_CYCLE');
    expect(err.message).toBe('base_config files include each other: root.yaml → top.yaml → mid.yaml → top.yaml.');
    expect(where(err)).toBe('mid.yaml:1:14');
  });

  it('a missing base file is OMNI_CONFIG_NOT_FOUND at the base_config line', async () => {
    await write('child.yaml', 'stages:\n  - stage_id: 0\nbase_config: nowhere.yaml\n');
    const err = await rejection(loadPipelineConfig(join(dir, 'child.yaml')));
    expect(err.code).toBe('OMNI_CONFIG_NOT_FOUND');
    expect(where(err)).toBe('child.yaml:3:14');
    expect(err.message).toContain(join(dir, 'nowhere.yaml'));
  });

  it('a legacy base file is rejected', async () => {
    await write('legacy.yaml', 'stage_args:\n  - stage_id: 0\n');
    await write('child.yaml', 'base_config: legacy.yaml\n');
    const err = await rejection(loadPipelineConfig(join(dir, 'child.yaml')));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(where(err)).toBe('child.yaml:1:14');
  });

  it('errors inside a base file point into that file', async () => {
    await write('base.yaml', 'stages:\n  - stage_id: 0\n    runtime:\n      num_replica: 2\n');
    await write('child.yaml', 'base_config: base.yaml\n');
    const err = await rejection(loadPipelineConfig(join(dir, 'child.yaml')));
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_UNKNOWN_KEY', 'base.yaml:4:7']);
  });
});

describe('base_config merge rules', () => {
  beforeEach(async () => {
    await write(
      'base.yaml',
      yaml`
        async_chunk: false
        trust_remote_code: true
        connectors:
          shm: { name: SharedMemoryConnector }
        stages:
          - stage_id: 0
            devices: "0"
            env: { A: 1, B: 2 }
            max_num_seqs: 4
            parallel_config: { ulysses_degree: 2, ring_degree: 2 }
            engine_args:
              hf_overrides: { a: 1, b: { c: 1 } }
            default_sampling_params: { temperature: 0.5, top_k: 5 }
          - stage_id: 1
            devices: "1"
            input_connectors: { from_stage_0: shm }
      `,
    );
    await write(
      'overlay.yaml',
      yaml`
        base_config: base.yaml
        dtype: bfloat16
        stages:
          - stage_id: 0
            env: { B: 3 }
            parallel_config: { ulysses_degree: 4 }
            engine_args:
              hf_overrides: { b: { d: 2 } }
            default_sampling_params: { top_k: 50 }
          - stage_id: 2
            devices: "2"
      `,
    );
  });

  it('merges stages by id: shallow overlay, deep-merged sampling params and engine_args, new ids appended', async () => {
    const config = await loadChain3(join(dir, 'overlay.yaml'));
    expect(config.topology).toBe('registry');
    expect(config.stages.map((s) => [s.stage_id, s.runtime.devices, s.engine_input_source])).toEqual([
      [0, '0', []],
      [1, '1', [0]],
      [2, '2', [1]],
    ]);
    const s0 = config.stages[0]!;
    // env and parallel_config are replaced, not merged
    expect(s0.runtime.env).toEqual({ B: '3' });
    expect(s0.engine_args.parallel_config).toEqual({ ulysses_degree: 4 });
    expect(s0.engine_args.hf_overrides).toEqual({ a: 1, b: { c: 1, d: 2 } });
    expect(s0.default_sampling_params).toEqual({ temperature: 0.5, top_k: 50 });
    expect(s0.engine_args).toMatchObject({
      max_num_seqs: 4,
      trust_remote_code: true,
      dtype: 'bfloat16',
      async_chunk: false,
    });
    expect(config.stages.map((s) => s.final_output)).toEqual([false, false, true]);
    expect(config.connectors).toEqual({ shm: { name: 'SharedMemoryConnector', extra: {} } });
  });

  it('records each value at the file it came from', async () => {
    const config = await loadChain3(join(dir, 'overlay.yaml'));
    const s0 = config.stages[0]!;
    expect(at(s0.locations.at('engine_args.max_num_seqs'))).toBe('base.yaml:9:19');
    expect(at(s0.locations.at('engine_args.parallel_config.ulysses_degree'))).toBe('overlay.yaml:6:40');
    expect(at(s0.locations.at('engine_args.hf_overrides.a'))).toBe('base.yaml:12:26');
    expect(at(s0.locations.at('engine_args.hf_overrides.b.d'))).toBe('overlay.yaml:8:31');
    expect(at(s0.locations.at('engine_args.dtype'))).toBe('overlay.yaml:2:8');
    expect(at(s0.locations.at('engine_args.trust_remote_code'))).toBe('base.yaml:2:20');
    expect(at(s0.locations.at('runtime.env.B'))).toBe('overlay.yaml:5:15');
    expect(s0.locations.has('runtime.env.A')).toBe(false);
    expect(at(s0.locations.at('default_sampling_params.temperature'))).toBe('base.yaml:13:45');
    expect(at(s0.locations.at('default_sampling_params.top_k'))).toBe('overlay.yaml:9:39');
    expect(at(config.stages[2]!.locations.at('runtime.devices'))).toBe('overlay.yaml:11:14');
  });

  it('without a pipeline the merged file has no topology: an error at the last `stages:` key', async () => {
    const err = await rejection(loadPipelineConfig(join(dir, 'overlay.yaml'), { pipelines: CHAIN3 }));
    expect([err.code, at(err.location!)]).toEqual(['OMNI_CONFIG_PIPELINE_UNRESOLVED', 'overlay.yaml:3:1']);
  });
});

describe('injected readFile', () => {
  it('reads the file and its base_config chain through options.readFile', async () => {
    const readFile = memoryFs({
      '/virtual/deploy/child.yaml': 'base_config: ../base/glm_image.yaml\nasync_chunk: false\n',
      '/virtual/base/glm_image.yaml': 'async_chunk: true\nstages:\n  - stage_id: 1\n    devices: "5"\n',
    });
    const config = await loadPipelineConfig('/virtual/deploy/child.yaml', {
      readFile,
      pipelines: testRegistry(),
      pipeline: 'glm_image',
    });
    expect(config.pipeline).toBe('glm_image');
    expect(config.async_chunk).toBe(false);
    expect(config.stages.map((s) => [s.stage_id, s.runtime.devices, s.engine_args.async_chunk])).toEqual([
      [0, null, false],
      [1, '5', false],
    ]);
    expect(at(config.stages[1]!.locations.at('runtime.devices'))).toBe('glm_image.yaml:4:14');
    expect(at(config.stages[1]!.locations.at('engine_args.async_chunk'))).toBe('child.yaml:2:14');
  });

  it('a missing root file is OMNI_CONFIG_NOT_FOUND without a location', async () => {
    const err = await rejection(loadPipelineConfig('/virtual/none.yaml', { readFile: memoryFs({}) }));
    expect(err.code).toBe('OMNI_CONFIG_NOT_FOUND');
    expect(err.location).toBeUndefined();
    expect(err.message).toContain('/virtual/none.yaml: no such file');
  });
});
