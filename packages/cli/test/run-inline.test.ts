/**
 * Inline diffusion: a pipeline of one diffusion stage with one replica runs its reference engine
 * as a worker thread of the orchestrator (plan --json: `worker.inline: true`; the replica's pid is
 * the orchestrator's), `--no-inline` makes it a separate process, and both give the same PNG bytes
 * for the same prompt and seed.
 */
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, requireBuiltCli, runCleanups, runCli, startCli, type Sandbox } from './helpers.js';
import {
  RUN_FIXTURES,
  explain,
  expectNothingLeft,
  jsonRecords,
  pngSize,
  readBytes,
  requireFreshBuild,
} from './run-helpers.js';

beforeAll(() => {
  requireBuiltCli();
  requireFreshBuild();
});
afterEach(runCleanups);

const DIFFUSION = join(RUN_FIXTURES, 'diffusion-only.yaml');
const PROMPT = 'a paper boat on a quiet lake';

interface PlanWorker {
  command: string;
  args: string[];
  inline?: boolean;
}

async function planWorker(box: Sandbox, extra: string[]): Promise<PlanWorker> {
  const r = await runCli(['plan', DIFFUSION, '--json', '--platform', 'cpu', ...extra], { tmpDir: box.tmp });
  expect(r.code, explain(r)).toBe(0);
  const plan = JSON.parse(r.stdout) as { stages: { replicas: { worker: PlanWorker }[] }[] };
  expect(plan.stages).toHaveLength(1);
  expect(plan.stages[0]!.replicas).toHaveLength(1);
  return plan.stages[0]!.replicas[0]!.worker;
}

async function runOnce(box: Sandbox, name: string, extra: string[]) {
  const out = join(box.root, name);
  const cli = startCli(
    [
      'run',
      DIFFUSION,
      '--input',
      PROMPT,
      '--json',
      '--out',
      out,
      '--platform',
      'cpu',
      '--lock-dir',
      box.lockDir,
      '--events',
      box.eventsFile(name),
      ...extra,
    ],
    { tmpDir: box.tmp },
  );
  const exit = await cli.waitExit(60_000);
  expect(exit.code, cli.describe()).toBe(0);
  const records = jsonRecords(cli.stdout());
  expect(records).toHaveLength(1);
  expect(records[0]).toMatchObject({ request_id: 'r1', stage_id: 0, replica_id: 0, type: 'image' });
  const events = cli.events();
  const spawned = events.filter((e) => e.type === 'replica:spawned');
  expect(spawned).toHaveLength(1);
  return { cliPid: cli.pid, replicaPid: spawned[0]!['pid'] as number, png: readBytes(records[0]!.path!), events };
}

describe('inline diffusion', { timeout: 120_000 }, () => {
  it('runs a one-stage one-replica diffusion pipeline inline, --no-inline as a process, with identical PNGs', async () => {
    const box = await createSandbox();
    // The plan says so...
    const inlineWorker = await planWorker(box, []);
    expect(inlineWorker.inline).toBe(true);
    const processWorker = await planWorker(box, ['--no-inline']);
    expect(processWorker.inline).toBeUndefined();
    expect(processWorker.args).toEqual(inlineWorker.args);

    // ...and the runs do it: inline, the replica's pid is the orchestrator's own.
    const inline = await runOnce(box, 'inline', []);
    expect(inline.replicaPid).toBe(inline.cliPid);
    const separate = await runOnce(box, 'no-inline', ['--no-inline']);
    expect(separate.replicaPid).not.toBe(separate.cliPid);

    // Same prompt, same seed: the same bytes either way, at the requested size (120 x 72).
    expect(pngSize(inline.png)).toEqual({ width: 120, height: 72 });
    expect(inline.png.equals(separate.png)).toBe(true);

    await expectNothingLeft(box, inline.events, inline.cliPid);
    await expectNothingLeft(box, separate.events, separate.cliPid);
  });
});
