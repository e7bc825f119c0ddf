/**
 * Issue 14, "inputs checked before anything starts": unknown flags get a did-you-mean, every
 * command has its own `--help`, options a command does not take are errors, and bad `--out`,
 * a directory as the pipeline file, `--platform cuda` without GPUs and a closed stdout all end
 * at once with a clear line (exit 2 for usage) instead of a stack trace, a spin or silence.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_BIN,
  STACK_LINE,
  TEST_FIXTURES,
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

const TWO_STAGE = join(TEST_FIXTURES, 'two-stage.yaml');
const cli = (args: string[], env?: Record<string, string>): Promise<CliResult> =>
  runCli(args, { tmpDir: box.tmp, ...(env ? { env } : {}) });

function expectUsage(r: CliResult, ...parts: string[]): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).not.toMatch(STACK_LINE);
  expect(r.stdout).toBe('');
  for (const p of parts) expect(r.stderr).toContain(p);
}

describe('command line', { timeout: 60_000 }, () => {
  it('plan --head says which edges may cross hosts and how their payloads travel (issues #11, #22: plan and transfers say which, per edge)', async () => {
    const file = join(TEST_FIXTURES, 'head-three-stage.yaml');
    const [table, json, allLocal] = await Promise.all([
      cli(['plan', file, '--platform', 'cpu', '--engine', 'reference', '--head']),
      cli(['plan', file, '--platform', 'cpu', '--engine', 'reference', '--head', '--json']),
      cli(['plan', file, '--platform', 'cpu', '--engine', 'reference', '--head', '--local-stages', '0,1,2']),
    ]);
    for (const r of [table, json, allLocal]) expect(r.code, r.stderr).toBe(0);
    const crossing =
      'shared memory above 65536 bytes, inline below; may cross hosts: fetched over TCP from the producer host';
    expect(table.stdout).toMatch(
      new RegExp(`^0 -> 1 +SharedMemoryConnector +chunks \\(thinker2talker_async_chunk\\) +${crossing}`, 'm'),
    );
    expect(table.stdout).toMatch(
      new RegExp(`^1 -> 2 +SharedMemoryConnector +chunks \\(talker2code2wav_async_chunk\\) +${crossing}`, 'm'),
    );
    expect(table.stdout).toContain('head mode: stages run on the head: 0, 2; from agents: 1');
    const plan = JSON.parse(json.stdout) as {
      head: unknown;
      transfers: { from: number; to: number; carried_by: string; across_hosts?: boolean }[];
    };
    expect(plan.head).toEqual({ local_stages: [0, 2], agent_stages: [1] });
    expect(plan.transfers.map((t) => [t.from, t.to, t.carried_by, t.across_hosts])).toEqual([
      [0, 1, 'shm', true],
      [1, 2, 'shm', true],
    ]);
    // Every stage on the head: nothing crosses hosts, shared memory as in a local plan.
    expect(allLocal.stdout).toMatch(
      /^0 -> 1 +SharedMemoryConnector +chunks \(\w+\) +shared memory above \d+ bytes, inline below$/m,
    );
    expect(allLocal.stdout).toContain('from agents: none');
  });

  it('an unknown flag names itself and the flag meant', async () => {
    const r = await cli(['plan', TWO_STAGE, '--platfrom', 'cpu']);
    expectUsage(r, 'error OMNI_USAGE: unknown option --platfrom', 'did you mean `--platform`?');
    expect(r.stderr).not.toContain("'--");
  });

  it('each command has its own --help, listing only the options it takes', async () => {
    const [run, schema, serve, helpRun] = await Promise.all([
      cli(['run', '--help']),
      cli(['schema', '--help']),
      cli(['serve', '-h']),
      cli(['help', 'run']),
    ]);
    for (const r of [run, schema, serve, helpRun]) expect(r.code, r.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Usage: omnistage run FILE/m);
    expect(run.stdout).toContain('--input VALUE');
    expect(run.stdout).toContain('--out VALUE');
    expect(run.stdout).not.toContain('--port');
    expect(helpRun.stdout).toBe(run.stdout);
    expect(schema.stdout).toMatch(/^Usage: omnistage schema/m);
    expect(schema.stdout).not.toContain('--input');
    expect(serve.stdout).toMatch(/^Usage: omnistage serve FILE/m);
    expect(serve.stdout).toContain('--port VALUE');
    expect(serve.stdout).not.toContain('--input-file');
  });

  it("an agent's --advertise must be an IP address of this host, not a name", async () => {
    const r = await cli([
      'agent',
      TWO_STAGE,
      '--platform',
      'cpu',
      '--stages',
      '1',
      '--advertise',
      'gpu-07',
      '--etcd',
      'http://127.0.0.1:9',
    ]);
    expectUsage(
      r,
      'error OMNI_USAGE: --advertise must be an IP address of this host, got "gpu-07"',
      'e.g. --advertise 10.0.0.7',
    );
  });

  it('options and arguments a command does not take are errors', async () => {
    const [portOnPlan, schemaFile, inputOnUp] = await Promise.all([
      cli(['plan', TWO_STAGE, '--platform', 'cpu', '--port', '9']),
      cli(['schema', 'foo.yaml']),
      cli(['up', TWO_STAGE, '--platform', 'cpu', '--input', 'hi']),
    ]);
    expectUsage(portOnPlan, '`omnistage plan` does not take --port', 'omnistage plan --help');
    expectUsage(schemaFile, '`omnistage schema` takes no file', 'foo.yaml');
    expectUsage(inputOnUp, '`omnistage up` does not take --input', 'omnistage run');
  });

  it('--mode on a file without modes, or a mode the file does not declare, is a usage error', async () => {
    const r = await cli(['plan', TWO_STAGE, '--platform', 'cpu', '--mode', 'fast']);
    expectUsage(r, 'error OMNI_USAGE: --mode fast', 'declares no `modes`');
  });

  it('a directory as the pipeline file says it is a directory', async () => {
    const r = await cli(['validate', box.root, '--platform', 'cpu']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('is a directory');
    expect(r.stderr).not.toContain('EISDIR');
  });

  it('--platform cuda with no visible GPU is refused with a hint to use --platform cpu', async () => {
    const r = await cli(['plan', TWO_STAGE, '--platform', 'cuda'], { PATH: '/usr/bin:/bin', CUDA_VISIBLE_DEVICES: '' });
    expectUsage(r, 'no GPU is visible', '--platform cpu');
  });

  it('--out that is an existing file or cannot be created is exit 2 before anything starts', async () => {
    const afile = join(box.root, 'afile');
    writeFileSync(afile, 'x');
    mkdirSync(join(box.root, 'locks-out'), { recursive: true });
    const common = [
      '--engine',
      'reference',
      '--platform',
      'cpu',
      '--lock-dir',
      join(box.root, 'locks-out'),
      '--input',
      'hi',
    ];
    const [file, proc] = await Promise.all([
      cli(['run', TWO_STAGE, ...common, '--out', afile, '--events', box.eventsFile('out-file')]),
      cli(['run', TWO_STAGE, ...common, '--out', '/proc/nope', '--events', box.eventsFile('out-proc')]),
    ]);
    expectUsage(file, `--out ${afile}`, 'is a file');
    expectUsage(proc, '--out /proc/nope');
    for (const r of [file, proc]) expect(r.events.some((e) => e.type === 'replica:spawned')).toBe(false);
  });

  it('--replica-logs DIR: each replica writes its own file, not the terminal', async () => {
    const dir = join(box.root, 'replica-logs');
    const r = await cli([
      'up',
      TWO_STAGE,
      '--engine',
      'reference',
      '--platform',
      'cpu',
      '--lock-dir',
      join(box.root, 'locks-replica-logs'),
      '--stage-overrides',
      '{"0": {"fail_phase": "hello", "fail_exit_code": 7}}',
      '--replica-logs',
      dir,
    ]);
    expect(r.code, r.stderr).toBe(1);
    expect(readFileSync(join(dir, 'stage0-replica0.log'), 'utf8')).toContain(
      'reference engine: failing before hello (fail_phase=hello, exit 7)',
    );
    // Not logged line by line (the error still quotes the replica's last lines).
    expect(r.stderr).not.toContain('[stage 0/0] reference engine');
    expect(r.stderr).toContain('OMNI_WORKER_EXITED');
  });

  it('`omnistage schema | head -1` ends quietly when stdout closes', async () => {
    const child = spawn(process.execPath, [CLI_BIN, 'schema'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
