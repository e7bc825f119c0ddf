/**
 * Done-when 6 and the bin shim: config errors print `FILE:LINE:COL: error CODE` on stderr and exit
 * 2, never a stack trace (unknown key with did-you-mean, bad YAML, unknown stage type, bad
 * --stage-overrides); usage errors exit 2; `npx omnistage --help` works from the repository root
 * and `omnistage` without arguments exits 2 with the help.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  STACK_LINE,
  TEST_FIXTURES,
  UPSTREAM_FIXTURES,
  createSandbox,
  requireBuiltCli,
  runCleanups,
  runCli,
  type CliResult,
  type Sandbox,
} from './helpers.js';

let box: Sandbox;
beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
});
afterAll(runCleanups);

const fixture = (name: string): string => join(TEST_FIXTURES, name);
const QWEN3 = join(UPSTREAM_FIXTURES, 'qwen3_omni_moe.yaml');

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, { tmpDir: box.tmp });
}

/** Exit 2, nothing on stdout that looks like success, no stack trace, and the located error line. */
function expectConfigError(r: CliResult, where: string, code: string): string {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).not.toMatch(STACK_LINE);
  const line = r.stderr.split('\n').find((l) => l.includes(`error ${code}:`));
  expect(line, r.stderr).toBeDefined();
  expect(line!.startsWith(`${where}: error ${code}: `), line).toBe(true);
  return r.stderr;
}

describe('config errors', { timeout: 60_000 }, () => {
  it('an unknown key: file:line:col, the code and a did-you-mean (validate, plan and up alike)', async () => {
    const file = fixture('unknown-key.yaml');
    const [validate, plan, up] = await Promise.all([
      cli(['validate', file, '--platform', 'cpu']),
      cli(['plan', file, '--platform', 'cpu']),
      cli([
        'up',
        file,
        '--engine',
        'reference',
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        box.eventsFile('unknown-key'),
      ]),
    ]);
    for (const r of [validate, plan, up]) {
      const stderr = expectConfigError(r, `${file}:5:7`, 'OMNI_CONFIG_UNKNOWN_KEY');
      expect(stderr).toContain('devcies');
      expect(stderr).toContain('Did you mean `devices`?');
    }
    // `up` stopped at the config: nothing was planned or started.
    expect(up.events.some((e) => e.type === 'replica:spawned')).toBe(false);
    expect(box.lockDirLeftovers()).toEqual([]);
  });

  it('bad YAML', async () => {
    const file = fixture('bad-yaml.yaml');
    const r = await cli(['validate', file, '--platform', 'cpu']);
    expectConfigError(r, `${file}:5:3`, 'OMNI_CONFIG_PARSE');
  });

  it('an unknown stage type names the stage and the known types', async () => {
    const file = fixture('unknown-stage-type.yaml');
    const r = await cli(['validate', file, '--platform', 'cpu']);
    const stderr = expectConfigError(r, `${file}:7:17`, 'OMNI_STAGE_TYPE_UNKNOWN');
    expect(stderr).toContain('stage 1');
    expect(stderr).toContain('"text_to_speech"');
    expect(stderr).toContain('"llm"');
    expect(stderr).toContain('"diffusion"');
  });

  it.each([
    ['not YAML', '{"0": {', '<stage-overrides>:1:8', 'is not valid YAML'],
    [
      'an unknown key, with did-you-mean',
      '{"0": {"runtime": {"devcies": "0"}}}',
      '<stage-overrides>:1:20',
      'Did you mean `devices`?',
    ],
    [
      'an unknown stage id',
      '{"9": {"runtime": {"devices": "0"}}}',
      '<stage-overrides>:1:2',
      'Known stage ids: 0, 1, 2',
    ],
  ])('bad --stage-overrides: %s', async (_name, overrides, where, detail) => {
    const r = await cli([
      'validate',
      QWEN3,
      '--pipeline',
      'qwen3_omni_moe',
      '--platform',
      'cpu',
      '--stage-overrides',
      overrides,
    ]);
    const stderr = expectConfigError(r, where, 'OMNI_CONFIG_OVERRIDE_INVALID');
    expect(stderr).toContain(detail);
  });
});

/** A two-stage pipeline on reference engines (llm → diffusion) whose stages carry these extra engine_args lines. */
async function referencePipeline(name: string, llmArgs: string[], diffusionArgs: string[]): Promise<string> {
  const file = join(box.root, `${name}.yaml`);
  const lines = [
    'stage_args:',
    '  - stage_id: 0',
    '    engine: reference',
    '    runtime: { devices: "0" }',
    '    engine_args:',
    '      model_stage: prompter',
    ...llmArgs.map((a) => `      ${a}`),
    '  - stage_id: 1',
    '    stage_type: diffusion',
    '    engine: reference',
    '    runtime: { devices: "1" }',
    '    engine_input_source: [0]',
    '    final_output: true',
    '    final_output_type: image',
    '    engine_args:',
    '      vae_use_tiling: true',
    ...diffusionArgs.map((a) => `      ${a}`),
    '',
  ];
  await writeFile(file, lines.join('\n'));
  return file;
}

describe('engine args of engines that declare them (reference llm and diffusion)', { timeout: 60_000 }, () => {
  it('a misspelt key is a warning at the key with did-you-mean; the run is still valid', async () => {
    const file = await referencePipeline('typo-warn', ['max_model_lne: 64'], ['vae_use_slicng: true']);
    const r = await cli(['validate', file, '--platform', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `${file}:7:7: warning OMNI_WARN_ENGINE_ARG_UNKNOWN: stage 0: engine "reference" (llm) does not take engine_args.max_model_lne`,
    );
    expect(r.stderr).toContain('Did you mean `max_model_len`?');
    expect(r.stderr).toContain(
      `${file}:17:7: warning OMNI_WARN_ENGINE_ARG_UNKNOWN: stage 1: engine "reference" (diffusion) does not take engine_args.vae_use_slicng`,
    );
    expect(r.stderr).toContain('Did you mean `vae_use_slicing`?');
    expect(r.stdout).toContain('2 warning(s)');
  });

  it.each([
    ['gpu_memory_utilisation: 0.3', 'gpu_memory_utilization', 'diffusion'],
    ['tensor_paralel_size: 2', 'tensor_parallel_size', 'llm'],
    ['parallel_confg: { ulysses_degree: 2 }', 'parallel_config', 'diffusion'],
  ])('a near miss of a key the planner reads (%s) is an error at the key, exit 2', async (line, intended, stage) => {
    const file = await referencePipeline(
      `typo-${intended}`,
      stage === 'llm' ? [line] : [],
      stage === 'llm' ? [] : [line],
    );
    const r = await cli(['plan', file, '--platform', 'cpu']);
    const stderr = expectConfigError(r, stage === 'llm' ? `${file}:7:7` : `${file}:16:7`, 'OMNI_CONFIG_INVALID');
    expect(stderr).toContain(`Did you mean \`${intended}\`?`);
  });

  it('--stage-overrides: a bare key that is nothing the stage knows is an error naming the key, the stage and the allowed keys', async () => {
    const file = await referencePipeline('override-unknown', [], []);
    const r = await cli(['validate', file, '--platform', 'cpu', '--stage-overrides', '{"1": {"zzz_unknown": 1}}']);
    const stderr = expectConfigError(r, '<stage-overrides>:1:8', 'OMNI_CONFIG_OVERRIDE_INVALID');
    expect(stderr).toContain('stage 1 has no key `zzz_unknown`');
    expect(stderr).toContain('engine "reference" (diffusion)');
    expect(stderr).toContain(
      'Allowed: devices, num_replicas, env, restart, max_inflight_per_replica, runtime, engine, engine_args, default_sampling_params, max_tokens',
    );
    const near = await cli([
      'validate',
      file,
      '--platform',
      'cpu',
      '--stage-overrides',
      '{"1": {"vae_use_slicng": true}}',
    ]);
    expect(expectConfigError(near, '<stage-overrides>:1:8', 'OMNI_CONFIG_OVERRIDE_INVALID')).toContain(
      'Did you mean `vae_use_slicing`?',
    );
    // A key the engine takes stays an engine arg.
    const fine = await cli([
      'plan',
      file,
      '--platform',
      'cpu',
      '--json',
      '--stage-overrides',
      '{"1": {"vae_use_slicing": true}}',
    ]);
    expect(fine.code, fine.stderr).toBe(0);
    const plan = JSON.parse(fine.stdout) as { stages: { replicas: { engine_args: Record<string, unknown> }[] }[] };
    expect(plan.stages[1]!.replicas[0]!.engine_args['vae_use_slicing']).toBe(true);
  });

  it('--stage-overrides: on an engine that takes any key (vllm) a bare unknown key is passed on, with the flag warning', async () => {
    const file = await referencePipeline('override-vllm', [], []);
    const r = await cli([
      'plan',
      file,
      '--platform',
      'cpu',
      '--model',
      'm',
      '--json',
      '--stage-overrides',
      '{"0": {"engine": "vllm", "zzz_unknown": 1}}',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as {
      stages: { replicas: { worker: { args: string[] } }[] }[];
      warnings: { code: string; line: number; col: number }[];
    };
    expect(plan.stages[0]!.replicas[0]!.worker.args).toContain('--zzz-unknown');
    expect(plan.warnings.filter((w) => w.code === 'OMNI_WARN_VLLM_FLAG_UNKNOWN').map((w) => [w.line, w.col])).toEqual([
      [1, 26],
    ]);
  });
});

describe('usage errors', { timeout: 60_000 }, () => {
  it.each([
    ['an unknown option', ['validate', '--bogus', QWEN3], 'OMNI_USAGE', '--bogus'],
    ['a missing file', ['validate', '/nonexistent-omnistage-dir/nope.yaml'], 'OMNI_CONFIG_NOT_FOUND', 'nope.yaml'],
    ['no file', ['up'], 'OMNI_USAGE', 'needs a pipeline file'],
    ['an unknown command', ['frobnicate', QWEN3], 'OMNI_USAGE', 'frobnicate'],
    [
      'a bad --stage-init-timeout',
      ['up', QWEN3, '--pipeline', 'qwen3_omni_moe', '--platform', 'cpu', '--stage-init-timeout', 'soon'],
      'OMNI_USAGE',
      '--stage-init-timeout',
    ],
    [
      'a bad --diffusion-batch-size',
      ['plan', QWEN3, '--pipeline', 'qwen3_omni_moe', '--platform', 'cpu', '--diffusion-batch-size', 'x'],
      'OMNI_USAGE',
      '--diffusion-batch-size',
    ],
    [
      'a bad --balance',
      ['run', QWEN3, '--platform', 'cpu', '--input', 'hi', '--balance', 'random'],
      'OMNI_USAGE',
      '--balance',
    ],
    ['run without input', ['run', QWEN3, '--platform', 'cpu'], 'OMNI_USAGE', '--input'],
  ])('%s exits 2', async (_name, args, code, detail) => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`error ${code}:`);
    expect(r.stderr).toContain(detail);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it('an --events file that cannot be written is a usage error (exit 2), before anything starts', async () => {
    const lockDir = join(box.root, 'events-locks');
    const r = await cli([
      'up',
      fixture('two-stage.yaml'),
      '--engine',
      'reference',
      '--platform',
      'cpu',
      '--lock-dir',
      lockDir,
      '--events',
      join(box.root, 'no-such-dir', 'ev.jsonl'),
    ]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('error OMNI_USAGE: cannot write the events file');
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr).not.toContain('spawning');
  });

  it('no arguments: exit 2 with the help on stderr', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage:');
    expect(r.stderr).toContain('omnistage up FILE');
    expect(r.stdout).toBe('');
  });

  it('--help: exit 0 with the help on stdout, every option on its own column', async () => {
    const r = await cli(['run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage:');
    const options = r.stdout.split('\n').filter((l) => l.startsWith('  --'));
    expect(options.length).toBeGreaterThan(10);
    for (const line of options) {
      expect(line, line).toMatch(/^ {2}--[a-z-]+( VALUE)? +\S/);
      expect(line, 'option and description run together').not.toMatch(/VALUE\S/);
    }
  });

  it('npx omnistage --help works from the repository root (bin shim)', async () => {
    const { stdout } = await promisify(execFile)('npx', ['--no-install', 'omnistage', '--help'], {
      cwd: REPO_ROOT,
      timeout: 30_000,
    });
    expect(stdout).toContain('Usage:');
    expect(stdout).toContain('omnistage validate FILE');
  });
});
