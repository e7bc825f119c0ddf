/**
 * Issue 15, point 4: every configuration input — thousands of seeded mutations of the upstream
 * fixtures and the examples, of whole files and of --stage-overrides, plus the hostile inputs the
 * fault campaign found — ends accepted or refused with a located error (exit code 2), within a
 * bounded time and heap. The harness runs each input in a worker thread, so a hang or an
 * out-of-memory is recorded rather than taking the runner down.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateInputs, runFuzz, type FuzzReport } from './fuzz/config-fuzz.js';
import { requireBuiltCli } from './helpers.js';

const REPO = join(import.meta.dirname, '..', '..', '..');
const SEED = Number(process.env['OMNISTAGE_FUZZ_SEED'] ?? 20261202);
const FILES = Number(process.env['OMNISTAGE_FUZZ_FILES'] ?? 1500);
const OVERRIDES = Number(process.env['OMNISTAGE_FUZZ_OVERRIDES'] ?? 700);

function summary(report: FuzzReport): string {
  const show = (xs: FuzzReport['crashes']) =>
    xs
      .slice(0, 5)
      .map(
        (x) =>
          `  ${x.input.label}${x.input.stageOverrides === undefined ? '' : ` ${JSON.stringify(x.input.stageOverrides.slice(0, 120))}`}: ${x.outcome.kind} ${x.outcome.code ?? ''} ${x.outcome.message ?? ''}`,
      );
  return [
    `[measure] config fuzz seed ${SEED}: ${report.inputs} inputs, ${report.accepted} accepted, ${report.refused} refused, ` +
      `${report.crashes.length} crashes, ${report.hangs.length} hangs, ${report.unlocated.length} unlocated; ` +
      `slowest ${Math.round(report.slowestMs)} ms, peak RSS ${Math.round(report.peakRssMiB)} MiB, ${Math.round(report.wallMs)} ms in all`,
    ...show(report.crashes),
    ...show(report.hangs),
    ...show(report.unlocated),
  ].join('\n');
}

describe('configuration fuzz', () => {
  it(
    'ends every mutated file and --stage-overrides accepted or refused with a located exit-2 error, in bounded time and memory',
    { timeout: 600_000 },
    async () => {
      requireBuiltCli();
      const report = await runFuzz(generateInputs(REPO, SEED, FILES, OVERRIDES), { budgetMs: 10_000, heapMiB: 512 });
      console.log(summary(report));
      expect(report.inputs).toBe(FILES + OVERRIDES);
      expect(report.accepted).toBeGreaterThan(0);
      expect(report.refused).toBeGreaterThan(0);
      expect(
        { crashes: report.crashes.length, hangs: report.hangs.length, unlocated: report.unlocated.length },
        summary(report),
      ).toEqual({ crashes: 0, hangs: 0, unlocated: 0 });
    },
  );

  it(
    'refuses the sizes and keys the fault campaign found, each within the budget, with a located exit-2 error',
    { timeout: 120_000 },
    async () => {
      requireBuiltCli();
      const stage = (runtime: string, args: string, extra = '') =>
        `stage_args:\n  - stage_id: 0\n    stage_type: llm\n    runtime:\n      devices: "0"\n${runtime}    engine_args:\n      model_stage: thinker\n${args}    final_output: true\n${extra}`;
      const texts = [
        stage('      num_replicas: 1000000000\n', ''),
        stage('      num_replicas: 1e6\n', ''),
        stage('', '      tensor_parallel_size: 100000000\n'),
        stage('', '      tensor_parallel_size: 1e308\n'),
        stage('', '      tensor_parallel_size: 1.5\n'),
        stage('', '', '    default_sampling_params:\n      constructor: 1\n'),
        stage('', '', '    default_sampling_params:\n      toString: 1\n'),
        stage('', `      ${'k'.repeat(1_000_000)}: 1\n`),
        stage('', `      foo: "${'x'.repeat(20_000_000)}"\n`),
      ];
      const inputs = texts.map((text, id) => ({ id, label: `hostile #${id}`, text, path: join(REPO, 'hostile.yaml') }));
      inputs.push({
        id: inputs.length,
        label: 'hostile overrides',
        text: stage('', ''),
        path: join(REPO, 'hostile.yaml'),
        stageOverrides: '{"0": {"num_replicas": 1000000000}}',
      } as (typeof inputs)[number]);
      const report = await runFuzz(inputs, { budgetMs: 5_000, heapMiB: 512 });
      console.log(summary(report).replace('config fuzz', 'hostile inputs'));
      expect(
        {
          refused: report.refused,
          crashes: report.crashes.length,
          hangs: report.hangs.length,
          unlocated: report.unlocated.length,
        },
        summary(report),
      ).toEqual({ refused: inputs.length, crashes: 0, hangs: 0, unlocated: 0 });
    },
  );
});
