/**
 * Upstream's lookup rule, the current deploy schema (session_mode, duplex_session, pooling), the
 * stage-graph checks and strategy files, on real YAML and real model directories in a temp dir.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig, type LoadPipelineOptions } from '../../src/config/load-pipeline.js';
import { at, rejection, testRegistry, yaml } from './helpers.js';

const registry = testRegistry();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omnistage-lookup-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function modelDir(name: string, files: Record<string, unknown>): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  for (const [f, v] of Object.entries(files)) await writeFile(join(d, f), JSON.stringify(v));
  return d;
}
const load = (text: string, options: LoadPipelineOptions = {}) =>
  loadPipelineConfig({ text, path: join(dir, 'deploy.yaml') }, { pipelines: registry, ...options });
const STAGES = 'stages:\n  - stage_id: 0\n';

describe('lookup by model', () => {
  it('config.json model_type, then architecture (singular), then model_index.json _class_name, then architectures', async () => {
    const byType = await load(STAGES, { model: await modelDir('tts', { 'config.json': { model_type: 'qwen3_tts' } }) });
    expect([byType.pipeline, byType.pipeline_selected_by]).toEqual(['qwen3_tts', 'model type']);
    const byArch1 = await load(STAGES, {
      model: await modelDir('vox', { 'config.json': { architecture: 'voxcpm2' } }),
    });
    expect(byArch1.pipeline).toBe('voxcpm2');
    const byClass = await load(STAGES, {
      model: await modelDir('wan', { 'model_index.json': { _class_name: 'WanPipeline' } }),
    });
    expect([byClass.pipeline, byClass.pipeline_selected_by]).toEqual(['wan2_2_ti2v', 'diffusers class']);
    const byArchs = await load(STAGES, {
      model: await modelDir('step', {
        'config.json': { model_type: 'step2', architectures: ['StepAudio2ForCausalLM'] },
      }),
    });
    expect([byArchs.pipeline, byArchs.pipeline_selected_by]).toEqual(['step_audio_2', 'architectures']);
  });

  it('the architectures fallback honours the config predicate (first match in registry order)', async () => {
    const archs = ['MingTTSForConditionalGeneration'];
    const moe = await load(STAGES, {
      model: await modelDir('ming-moe', { 'config.json': { model_type: 'bailingmm', architectures: archs } }),
    });
    expect(moe.pipeline).toBe('ming_tts_moe');
    const dense = await load(STAGES, {
      model: await modelDir('ming-dense', { 'config.json': { model_type: 'dense', architectures: archs } }),
    });
    expect(dense.pipeline).toBe('ming_tts');
  });

  it('a model config selects a pipeline variant: Qwen3-Omni without audio output is thinker only (upstream resolver)', async () => {
    const thinker = await modelDir('q3-thinking', {
      'config.json': { model_type: 'qwen3_omni_moe', enable_audio_output: false },
    });
    const one = await load('pipeline: qwen3_omni_moe\nstages:\n  - stage_id: 0\n', { model: thinker });
    expect([one.pipeline, one.stages.map((s) => [s.stage_id, s.final_output_type])]).toEqual([
      'qwen3_omni_moe_thinker_only',
      [[0, 'text']],
    ]);
    const full = await load(STAGES, {
      model: await modelDir('q3', { 'config.json': { model_type: 'qwen3_omni_moe', enable_audio_output: true } }),
    });
    expect(full.stages.map((s) => s.stage_id)).toEqual([0, 1, 2]);
  });

  it('a hub id selects the longest registry key inside its basename; the file model: counts too', async () => {
    const hub = await load(STAGES, { model: 'Qwen/Qwen3-TTS-12Hz-1.7B' });
    expect([hub.pipeline, hub.pipeline_selected_by]).toEqual(['qwen3_tts', 'model name']);
    const fromFile = await load(`model: OpenMOSS/MOSS-TTS-Realtime\n${STAGES}`);
    expect(fromFile.pipeline).toBe('moss_tts_realtime');
  });

  it('a model that matches nothing is an error that says so', async () => {
    const err = await rejection(load(STAGES, { model: 'acme/unknown-model' }));
    expect(err.code).toBe('OMNI_CONFIG_PIPELINE_UNRESOLVED');
    expect(err.message).toContain('model `acme/unknown-model` matches no registered pipeline');
  });

  it('an unknown --pipeline is an error with did-you-mean', async () => {
    const err = await rejection(load(STAGES, { pipeline: 'qwen3_ttts' }));
    expect(err.code).toBe('OMNI_CONFIG_PIPELINE_UNKNOWN');
    expect(err.hint).toMatch(/^Did you mean `qwen3_tts`\?/);
  });
});

describe('current schema', () => {
  it('session_mode: duplex loads, with duplex_session; every stage gets duplex_max_sessions', async () => {
    const config = await load(
      'pipeline: personaplex\nsession_mode: duplex\nduplex_session:\n  max_sessions: 2\nstages: []\n',
    );
    expect([config.session_mode, config.duplex_session]).toEqual(['duplex', { max_sessions: 2 }]);
    expect(config.stages.map((s) => s.engine_args.duplex_max_sessions)).toEqual([2, 2]);
  });

  it('duplex_session values must be > 0, and session_mode is turn or duplex, at their lines', async () => {
    const zero = await rejection(load('pipeline: personaplex\nduplex_session:\n  max_sessions: 0\nstages: []\n'));
    expect([zero.code, at(zero.location!)]).toEqual(['OMNI_CONFIG_INVALID', 'deploy.yaml:3:17']);
    const mode = await rejection(load('pipeline: personaplex\nsession_mode: simplex\nstages: []\n'));
    expect([mode.code, at(mode.location!)]).toEqual(['OMNI_CONFIG_INVALID', 'deploy.yaml:2:15']);
  });

  it('runner: pooling and default_pooling_params (deep-merged over base_config) reach the stage', async () => {
    await writeFile(
      join(dir, 'pool-base.yaml'),
      'stages:\n  - stage_id: 0\n    default_pooling_params: { task: token_classify, dims: 4 }\n',
    );
    await writeFile(
      join(dir, 'pool.yaml'),
      'base_config: pool-base.yaml\npipeline: voxcpm2\nstages:\n  - stage_id: 0\n    runner: pooling\n    default_pooling_params: { dims: 8 }\n',
    );
    const config = await loadPipelineConfig(join(dir, 'pool.yaml'), { pipelines: registry });
    expect(config.stages[0]?.engine_args.runner).toBe('pooling');
    expect(config.stages[0]?.extras.default_pooling_params).toEqual({ task: 'token_classify', dims: 8 });
    const bad = await rejection(load('pipeline: voxcpm2\nstages:\n  - stage_id: 0\n    runner: pool\n'));
    expect([bad.code, at(bad.location!)]).toEqual(['OMNI_CONFIG_INVALID', 'deploy.yaml:4:13']);
  });
});

describe('stage graph', () => {
  it('an engine_input_source cycle is a config error naming both stages at their lines', async () => {
    const err = await rejection(
      load(yaml`
        stages:
          - stage_id: 0
            stage_type: llm
          - stage_id: 1
            stage_type: llm
            engine_input_source: [2]
          - stage_id: 2
            stage_type: llm
            engine_input_source: [1]
            final_output: true
      `),
    );
    expect(err.code).toBe('OMNI_CONFIG_TOPOLOGY');
    expect(err.message).toBe(
      'Stages take input from each other in a cycle, so no request reaches them: stage 1 (deploy.yaml:6) ← stage 2 (deploy.yaml:9) ← stage 1 (deploy.yaml:6).',
    );
    expect(at(err.location!)).toBe('deploy.yaml:6:26');
    expect(err.related?.map(at)).toEqual(['deploy.yaml:9:26']);
  });

  it('a cycle behind an entry stage (legacy file) is found too', async () => {
    const err = await rejection(
      loadPipelineConfig({
        text: 'stage_args:\n  - stage_id: 0\n  - stage_id: 1\n    engine_input_source: [0, 2]\n  - stage_id: 2\n    engine_input_source: [1]\n  - stage_id: 3\n    engine_input_source: [2]\n',
        path: join(dir, 'legacy.yaml'),
      }),
    );
    expect(err.code).toBe('OMNI_CONFIG_TOPOLOGY');
    expect(err.message).toContain('stage 1 (legacy.yaml:4) ← stage 2 (legacy.yaml:6) ← stage 1 (legacy.yaml:4)');
  });
});

describe('strategy files', () => {
  const strategy = async (name: string, text: string): Promise<string> => {
    const f = join(dir, name);
    await writeFile(f, text);
    return f;
  };

  it('stage_replica size 2 makes two replicas of the role with the stage devices as template; tp goes to engine args', async () => {
    const file = await strategy(
      's.yaml',
      'strategies:\n  code2wav:\n    - axis: stage_replica\n      size: 2\n      routing: least_queue\n  qwen3_tts:\n    - axis: tp\n      size: 2\n',
    );
    const config = await load(
      'pipeline: qwen3_tts\nstages:\n  - stage_id: 0\n    devices: "0,1"\n  - stage_id: 1\n    devices: "2"\n',
      { strategyConfig: file },
    );
    expect(
      config.stages.map((s) => [
        s.stage_id,
        s.runtime.num_replicas,
        s.runtime.devices,
        s.engine_args.tensor_parallel_size,
      ]),
    ).toEqual([
      [0, 1, '0,1', 2],
      [1, 2, '2', undefined],
    ]);
    expect(config.balance).toBe('least-inflight');
    expect(at(config.stages[1]!.locations.at('runtime.num_replicas'))).toBe('s.yaml:3:7');
  });

  it('located errors for upstream rules: unknown role, reserved axis, routing on tp, conflicting value, device count', async () => {
    const deploy = 'pipeline: qwen3_tts\nstages:\n  - stage_id: 0\n    tensor_parallel_size: 1\n    devices: "0,1,2"\n';
    const cases: [string, string, RegExp][] = [
      [
        'strategies:\n  talker:\n    - { axis: tp, size: 2 }\n',
        'x.yaml:2:3',
        /did not match any stage; available stages: 'qwen3_tts'\(id=0\), 'code2wav'\(id=1\)/,
      ],
      [
        'strategies:\n  code2wav:\n    - { axis: cfg, size: 2 }\n',
        'x.yaml:3:15',
        /axis kind 'cfg' is not translatable yet/,
      ],
      [
        'strategies:\n  code2wav:\n    - { axis: tp, size: 2, routing: random }\n',
        'x.yaml:3:37',
        /axis 'tp' does not accept a 'routing' policy/,
      ],
      [
        'strategies:\n  qwen3_tts:\n    - { axis: tp, size: 2 }\n',
        'x.yaml:3:7',
        /strategy derives tensor_parallel_size=2 but the deploy config already set tensor_parallel_size=1/,
      ],
      [
        'strategies:\n  qwen3_tts:\n    - { axis: stage_replica, size: 2 }\n',
        'deploy.yaml:5:14',
        /declared 3 device id\(s\) but the strategy world size is 1/,
      ],
      [
        'strategies:\n  code2wav:\n    - { axis: dp, size: 2, l1_owner: delegated }\n',
        'x.yaml:3:7',
        /dp axis 'dp' must have l1_owner 'engine'/,
      ],
      ['strategies:\n  code2wav:\n    - { axis: tp }\n', 'x.yaml:3:7', /strategy entry for axis 'tp' needs a 'size'/],
    ];
    for (const [text, where, message] of cases) {
      const file = await strategy('x.yaml', text);
      const err = await rejection(load(deploy, { strategyConfig: file }));
      expect([err.code, at(err.location!)], text).toEqual(['OMNI_CONFIG_STRATEGY', where]);
      expect(err.message).toMatch(message);
    }
  });
});
