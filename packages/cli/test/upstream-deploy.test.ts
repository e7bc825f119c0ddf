/**
 * Every upstream vLLM-Omni deploy file gets the real topology of its pipeline: `plan` gives exactly
 * the stages, stage types, inputs and final outputs of the pipeline in upstream's registry
 * (pipelines.json), whether the pipeline comes from the file's `pipeline:` key, from `--pipeline`
 * or from a local model directory's config.json; and `up --engine reference` brings each file up
 * and down cleanly. Plans run in process through the public API (the CLI's own path: built-in
 * plugins, loader, planner); every `up` runs the real CLI, two at a time.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Omnistage, loadPipelineConfig, planPipeline, planToJson } from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';
import { upstreamPipelinesPlugin } from '@omnistage/plugin-upstream-pipelines';
import {
  REPO_ROOT,
  createSandbox,
  isAlive,
  readEvents,
  replicaPids,
  requireBuiltCli,
  runCleanups,
  runCli,
  startCli,
  waitAllDead,
  type Sandbox,
} from './helpers.js';

/** `shared/fixtures` beside the repository when it is there, else the verbatim copies the plugin ships. */
const SHARED = join(REPO_ROOT, '..', 'shared', 'fixtures');
const SHIPPED = join(REPO_ROOT, 'packages', 'plugin-upstream-pipelines', 'fixtures');
const FIXTURES = existsSync(join(SHARED, 'upstream-deploy')) ? SHARED : SHIPPED;
const DEPLOY_DIR = join(FIXTURES, 'upstream-deploy');
const FILES = readdirSync(DEPLOY_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

interface UpstreamStage {
  stage_id: number;
  stage_type: string;
  engine_input_source: number[];
  final_output: boolean;
  final_output_type: string | null;
  model_stage: string;
}
const PIPELINES = JSON.parse(readFileSync(join(FIXTURES, 'upstream-pipelines', 'pipelines.json'), 'utf8')) as Record<
  string,
  { stages: UpstreamStage[] }
>;
interface DeployRow {
  file: string;
  pipeline: string | null;
  pipeline_key_in_yaml: string | null;
}
const ROWS = JSON.parse(readFileSync(join(FIXTURES, 'upstream-pipelines', 'deploy-yamls.json'), 'utf8')) as DeployRow[];

/**
 * The pipeline each file selects (deploy-yamls.json). `moss_voice_generator.yaml` is the one file
 * upstream leaves to the checkpoint; its header names MossTTSDelayModel, i.e. `moss_tts_delay`.
 */
function expectedPipeline(name: string): { pipeline: string; inFile: boolean } {
  const row = ROWS.find((r) => r.file.split('@')[0]?.endsWith(`/${name}`));
  if (!row) throw new Error(`${name} is not in deploy-yamls.json`);
  return { pipeline: row.pipeline ?? 'moss_tts_delay', inFile: row.pipeline_key_in_yaml !== null };
}

let box: Sandbox;
/** Per file without `pipeline:`, a model directory whose config.json names the model type. */
const modelDirs = new Map<string, string>();
beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
  for (const name of FILES) {
    const { pipeline, inFile } = expectedPipeline(name);
    if (inFile) continue;
    const dir = join(box.root, 'models', name.replace(/\.yaml$/, ''));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: pipeline, architectures: ['Unused'] }));
    modelDirs.set(name, dir);
  }
});
afterAll(runCleanups);

const selection = (name: string): string[] => {
  const dir = modelDirs.get(name);
  return dir === undefined ? [] : ['--model', dir];
};

interface PlanStage {
  stage_id: number;
  stage_type: string;
  model_stage: string | null;
  engine_input_source: number[];
  final_output: boolean;
  final_output_type: string | null;
  topology: { source: string; pipeline: string | null };
}

async function planInProcess(name: string): Promise<{
  topology: { source: string; pipeline: string | null; selected_by: string | null };
  stages: PlanStage[];
  warnings: { code: string; message: string }[];
}> {
  const dir = modelDirs.get(name);
  let omni: Omnistage | undefined;
  const config = await loadPipelineConfig(join(DEPLOY_DIR, name), {
    platform: 'cpu',
    ...(dir === undefined ? {} : { model: dir }),
    pipelines: () =>
      (omni = new Omnistage({
        plugins: [llmPlugin(), diffusionPlugin(), kvConnectorPlugin(), upstreamPipelinesPlugin()],
      })).pipelines,
  });
  if (!omni) throw new Error('the loader did not ask for the registry');
  const plan = await planPipeline(omni, config, {
    platform: 'cpu',
    engine: 'reference',
    ...(dir === undefined ? {} : { model: dir }),
  });
  return planToJson(plan) as unknown as Awaited<ReturnType<typeof planInProcess>>;
}

describe('upstream deploy files', { timeout: 120_000 }, () => {
  it('the folder holds the 41 upstream deploy files', () => {
    expect(FILES.length).toBe(41);
  });

  it.each(FILES)('%s: plan gives exactly the stages, types, inputs and final outputs of its pipeline', async (name) => {
    const { pipeline, inFile } = expectedPipeline(name);
    const plan = await planInProcess(name);
    expect(plan.topology).toEqual({
      source: 'registry',
      pipeline,
      selected_by: inFile ? 'pipeline key' : 'model type',
    });
    const want = PIPELINES[pipeline]!.stages.map((s) => ({
      stage_id: s.stage_id,
      stage_type: s.stage_type,
      model_stage: s.model_stage,
      engine_input_source: s.engine_input_source,
      final_output: s.final_output,
      final_output_type: s.final_output_type,
      topology: { source: 'registry', pipeline },
    }));
    const got = plan.stages.map((s) => ({
      stage_id: s.stage_id,
      stage_type: s.stage_type,
      model_stage: s.model_stage,
      engine_input_source: s.engine_input_source,
      final_output: s.final_output,
      final_output_type: s.final_output_type,
      topology: s.topology,
    }));
    expect(got).toEqual(want);
    // Every engine arg of the file is one the reference engines take (they stand in for vLLM-Omni's).
    expect(plan.warnings.filter((w) => w.code === 'OMNI_WARN_ENGINE_ARG_UNKNOWN').map((w) => w.message)).toEqual([]);
  });

  it('the CLI plan agrees: --pipeline, a model directory and the file name select the same topology; where nothing does it is a located error', async () => {
    const file = join(DEPLOY_DIR, 'qwen3_tts.yaml');
    const common = ['--platform', 'cpu', '--json'];
    const [byFlag, byModel, byName, neither] = await Promise.all([
      runCli(['plan', file, '--pipeline', 'qwen3_tts', ...common], { tmpDir: box.tmp }),
      runCli(['plan', file, ...selection('qwen3_tts.yaml'), ...common], { tmpDir: box.tmp }),
      runCli(['plan', file, ...common], { tmpDir: box.tmp }),
      runCli(['plan', join(DEPLOY_DIR, 'moss_voice_generator.yaml'), ...common], { tmpDir: box.tmp }),
    ]);
    expect(byFlag.code, byFlag.stderr).toBe(0);
    expect(byModel.code, byModel.stderr).toBe(0);
    const stages = (out: string) =>
      (JSON.parse(out) as { stages: PlanStage[] }).stages.map((s) => [
        s.stage_id,
        s.model_stage,
        s.engine_input_source,
        s.final_output_type,
      ]);
    expect(stages(byFlag.stdout)).toEqual([
      [0, 'qwen3_tts', [], null],
      [1, 'code2wav', [0], 'audio'],
    ]);
    expect(stages(byModel.stdout)).toEqual(stages(byFlag.stdout));
    expect(byName.code, byName.stderr).toBe(0);
    expect(stages(byName.stdout)).toEqual(stages(byFlag.stdout));
    const notices = (JSON.parse(byName.stdout) as { warnings: { code: string; line?: number }[] }).warnings.filter(
      (w) => w.code === 'OMNI_WARN_PIPELINE_FROM_FILE_NAME',
    );
    expect(notices.map((w) => w.line)).toEqual([50]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/moss_voice_generator\.yaml:\d+:1: error OMNI_CONFIG_PIPELINE_UNRESOLVED/);
  });

  it("the plan table shows each stage's model_stage and where the topology came from", async () => {
    const r = await runCli(
      ['plan', join(DEPLOY_DIR, 'glm_image.yaml'), '--pipeline', 'glm_image', '--platform', 'cpu'],
      { tmpDir: box.tmp },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('topology: pipeline glm_image (registry, selected by --pipeline)');
    expect(r.stdout).toMatch(/^0\s+ar\s+llm\s+-\s+-\s+0\/1/m);
    expect(r.stdout).toMatch(/^1\s+dit\s+diffusion\s+0\s+image\s+0\/1/m);
  });

  it('every file comes up on reference engines and SIGINT takes it down cleanly, exit 130 (two at a time, real CLI)', async () => {
    const failures: string[] = [];
    const queue = [...FILES];
    const worker = async (): Promise<void> => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        const events = box.eventsFile(name);
        const up = startCli(
          [
            'up',
            join(DEPLOY_DIR, name),
            ...selection(name),
            '--engine',
            'reference',
            '--platform',
            'cpu',
            '--lock-dir',
            box.lockDir,
            '--events',
            events,
          ],
          { tmpDir: box.tmp },
        );
        try {
          await up.waitForEvent((e) => e.type === 'pipeline:ready', 60_000);
          const pids = replicaPids(up.events());
          const want = PIPELINES[expectedPipeline(name).pipeline]!.stages.length;
          if (pids.length < want || !pids.every(isAlive))
            failures.push(`${name}: ${pids.length} live replicas, want ≥ ${want}`);
          up.signal('SIGINT');
          const exit = await up.waitExit(30_000);
          // Ctrl-C after a clean teardown: 128 + SIGINT.
          if (exit.code !== 130) failures.push(`${name}: exit ${JSON.stringify(exit)}\n${up.describe()}`);
          const all = readEvents(events, true);
          if (!all.some((e) => e.type === 'pipeline:stopped') || all.some((e) => e.type === 'pipeline:failed'))
            failures.push(`${name}: no clean stop`);
          if ((await waitAllDead(pids, 5_000)) === null) failures.push(`${name}: replicas still alive`);
        } catch (err) {
          up.signal('SIGKILL');
          failures.push(`${name}: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all([worker(), worker()]);
    expect(failures).toEqual([]);
    expect(box.lockDirLeftovers()).toEqual([]);
    expect(box.runDirLeftovers()).toEqual([]);
  }, 300_000);
});

describe('beyond the fixtures, through the real CLI', { timeout: 120_000 }, () => {
  const write = async (name: string, text: string): Promise<string> => {
    const file = join(box.root, name);
    await writeFile(file, text);
    return file;
  };
  // plan and validate take no --lock-dir (they start nothing); run does.
  const common = () => ['--platform', 'cpu'];
  const launch = () => [...common(), '--lock-dir', box.lockDir];

  it('a deploy file written for a pipeline none of the fixtures uses (aura_omni) gets its four-stage topology', async () => {
    const file = await write(
      'my_aura.yaml',
      'pipeline: aura_omni\nasync_chunk: false\nstages:\n  - stage_id: 2\n    devices: "1"\n    max_num_seqs: 4\n',
    );
    const r = await runCli(['plan', file, '--json', ...common()], { tmpDir: box.tmp });
    expect(r.code, r.stderr).toBe(0);
    const stages = (
      JSON.parse(r.stdout) as {
        stages: (PlanStage & { replicas: { devices: string | null; engine_args: Record<string, unknown> }[] })[];
      }
    ).stages;
    const want = PIPELINES['aura_omni']!.stages;
    expect(
      stages.map((s) => [s.stage_id, s.stage_type, s.model_stage, s.engine_input_source, s.final_output_type]),
    ).toEqual(want.map((s) => [s.stage_id, s.stage_type, s.model_stage, s.engine_input_source, s.final_output_type]));
    expect(stages[2]?.replicas[0]?.devices).toBe('1');
    expect(stages[2]?.replicas[0]?.engine_args['max_num_seqs']).toBe(4);
  });

  it('an engine_input_source cycle is exit 2 naming both stages at their lines', async () => {
    const file = await write(
      'cycle.yaml',
      'stages:\n  - stage_id: 0\n    stage_type: llm\n  - stage_id: 1\n    stage_type: llm\n    engine_input_source: [2]\n  - stage_id: 2\n    stage_type: llm\n    engine_input_source: [1]\n    final_output: true\n',
    );
    for (const cmd of ['validate', 'run']) {
      const r = await runCli(cmd === 'run' ? [cmd, file, ...launch(), '--input', 'x'] : [cmd, file, ...common()], {
        tmpDir: box.tmp,
      });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${file}:6:26: error OMNI_CONFIG_TOPOLOGY`);
      expect(r.stderr).toContain('stage 1 (cycle.yaml:6) ← stage 2 (cycle.yaml:9) ← stage 1 (cycle.yaml:6)');
    }
  });

  it('session_mode: duplex loads (personaplex) and plans every stage with duplex_max_sessions', async () => {
    const r = await runCli(['plan', join(DEPLOY_DIR, 'personaplex.yaml'), '--json', ...common()], { tmpDir: box.tmp });
    expect(r.code, r.stderr).toBe(0);
    const stages = (JSON.parse(r.stdout) as { stages: { replicas: { engine_args: Record<string, unknown> }[] }[] })
      .stages;
    expect(stages.map((s) => s.replicas[0]?.engine_args['duplex_max_sessions'])).toEqual([2, 2]);
  });

  it('a strategy file with stage_replica size 2 plans two replicas from the template devices', async () => {
    const strategy = await write(
      'strategy.yaml',
      'strategies:\n  code2wav:\n    - axis: stage_replica\n      size: 2\n      routing: round_robin\n',
    );
    const r = await runCli(
      [
        'plan',
        join(DEPLOY_DIR, 'qwen3_tts.yaml'),
        '--pipeline',
        'qwen3_tts',
        '--strategy-config',
        strategy,
        '--json',
        ...common(),
      ],
      { tmpDir: box.tmp },
    );
    expect(r.code, r.stderr).toBe(0);
    const stages = (
      JSON.parse(r.stdout) as {
        stages: { stage_id: number; num_replicas: number; replicas: { devices: string | null }[] }[];
      }
    ).stages;
    // qwen3_tts.yaml gives code2wav `devices: "0"`: a one-device template, replica r gets device r.
    expect(stages.map((s) => [s.stage_id, s.num_replicas, s.replicas.map((x) => x.devices)])).toEqual([
      [0, 1, ['0']],
      [1, 2, ['0', '1']],
    ]);
  });

  it('run writes an image for a diffusion-final pipeline (glm_image) and a WAV for an audio-final one (qwen3_tts)', async () => {
    for (const [name, ext, magic] of [
      ['glm_image', 'png', Buffer.from([0x89, 0x50, 0x4e, 0x47])],
      ['qwen3_tts', 'wav', Buffer.from('RIFF')],
    ] as const) {
      const out = join(box.root, `out-${name}`);
      const r = await runCli(
        [
          'run',
          join(DEPLOY_DIR, `${name}.yaml`),
          '--pipeline',
          name,
          '--engine',
          'reference',
          '--input',
          'a red fox',
          '--out',
          out,
          ...launch(),
        ],
        { tmpDir: box.tmp, timeoutMs: 60_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      const files = (await readdir(out)).filter((f) => f.endsWith(`.${ext}`));
      expect(files, r.stdout).toHaveLength(1);
      const bytes = await readFile(join(out, files[0]!));
      expect(bytes.subarray(0, magic.length).equals(magic)).toBe(true);
      if (ext === 'wav') expect(bytes.subarray(8, 12).toString()).toBe('WAVE');
    }
  });
});
