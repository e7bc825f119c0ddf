/**
 * `omnistage run examples/quickstart/pipeline.yaml` (llm -> diffusion, reference engines, real
 * processes): one PNG per prompt at the requested size, different prompts give different images,
 * the same prompt and seed give byte-identical PNGs across runs, and `--json` prints one record per
 * final output.
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, requireBuiltCli, runCleanups, runCli, type Sandbox } from './helpers.js';
import {
  QUICKSTART,
  explain,
  expectNothingLeft,
  jsonRecords,
  pngSize,
  readBytes,
  requireFreshBuild,
  type RunRecord,
} from './run-helpers.js';

beforeAll(() => {
  requireBuiltCli();
  requireFreshBuild();
});
afterEach(runCleanups);

const LIGHTHOUSE = 'a lighthouse at dawn';
const FOX = 'a red fox in the snow';

async function run(box: Sandbox, name: string, inputs: string[], extra: string[] = []) {
  const out = join(box.root, name);
  const events = box.eventsFile(name);
  const args = [
    'run',
    QUICKSTART,
    ...inputs.flatMap((i) => ['--input', i]),
    '--json',
    '--out',
    out,
    '--platform',
    'cpu',
    '--lock-dir',
    box.lockDir,
    '--events',
    events,
    ...extra,
  ];
  const r = await runCli(args, { tmpDir: box.tmp, timeoutMs: 60_000 });
  expect(r.code, explain(r)).toBe(0);
  return { r, out, records: jsonRecords(r.stdout) };
}

describe('omnistage run examples/quickstart', { timeout: 120_000 }, () => {
  it('writes one PNG per prompt, different prompts give different images, --json prints one record per output', async () => {
    const box = await createSandbox();
    const { r, out, records: all } = await run(box, 'two-prompts', [LIGHTHOUSE, FOX]);
    let records = all;

    // --json: one object per final output, nothing else on stdout: stage 0's enhanced prompt (text)
    // and stage 1's image, each marked as a reference engine's output.
    const texts = records.filter((rec) => rec.stage_id === 0);
    expect(texts.map((rec) => rec.request_id).sort()).toEqual(['r1', 'r2']);
    for (const rec of texts)
      expect(rec).toMatchObject({ type: 'text', text: expect.stringMatching(/\S/), reference_engine: true });
    records = records.filter((rec) => rec.stage_id === 1);
    expect(records).toHaveLength(2);
    for (const rec of records) {
      expect(Object.keys(rec).sort()).toEqual([
        'path',
        'reference_engine',
        'replica_id',
        'request_id',
        'stage_id',
        'type',
      ]);
      expect(rec).toMatchObject({ stage_id: 1, replica_id: 0, type: 'image' });
      expect(isAbsolute(rec.path!)).toBe(true);
      expect(dirname(rec.path!)).toBe(out);
      expect(rec.path!.endsWith('.png')).toBe(true);
      expect(existsSync(rec.path!)).toBe(true);
    }
    const byRequest = new Map(records.map((rec) => [rec.request_id, rec] as const));
    expect([...byRequest.keys()].sort()).toEqual(['r1', 'r2']);

    // Valid PNGs at the size the pipeline asks for (256 x 256), and the two prompts differ.
    const a = readBytes(byRequest.get('r1')!.path!);
    const b = readBytes(byRequest.get('r2')!.path!);
    expect(pngSize(a)).toEqual({ width: 256, height: 256 });
    expect(pngSize(b)).toEqual({ width: 256, height: 256 });
    expect(a.equals(b)).toBe(false);

    // Each request went through both stages.
    const dispatched = r.events.filter((e) => e.type === 'request:dispatched');
    expect(dispatched.map((e) => `${String(e['request_id'])}/${String(e['stage_id'])}`).sort()).toEqual([
      'r1/0',
      'r1/1',
      'r2/0',
      'r2/1',
    ]);
    await expectNothingLeft(box, r.events, -1);
  });

  it('gives byte-identical PNGs for the same prompt and seed in two runs, at the requested size', async () => {
    const box = await createSandbox();
    // A non-square size and another seed through --stage-overrides: the engine honours what is asked.
    const overrides = [
      '--stage-overrides',
      JSON.stringify({ 1: { default_sampling_params: { width: 160, height: 96, seed: 1234 } } }),
    ];
    const first = await run(box, 'first', [FOX], overrides);
    const second = await run(box, 'second', [FOX], overrides);
    const other = await run(
      box,
      'other-seed',
      [FOX],
      ['--stage-overrides', JSON.stringify({ 1: { default_sampling_params: { width: 160, height: 96, seed: 1235 } } })],
    );
    const png = (all: RunRecord[]): Buffer => {
      const recs = all.filter((rec) => rec.stage_id === 1);
      expect(recs).toHaveLength(1);
      expect(recs[0]).toMatchObject({ request_id: 'r1', stage_id: 1, type: 'image' });
      return readBytes(recs[0]!.path!);
    };
    const x = png(first.records);
    const y = png(second.records);
    expect(pngSize(x)).toEqual({ width: 160, height: 96 });
    expect(x.equals(y), 'same prompt + seed, two runs: identical bytes').toBe(true);
    // ...and the comparison can fail: another seed gives another image.
    expect(x.equals(png(other.records))).toBe(false);
    for (const run of [first, second, other]) await expectNothingLeft(box, run.r.events, -1);
  });
});
