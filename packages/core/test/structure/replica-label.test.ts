/**
 * One spelling per phrase: messages name a replica with `replicaLabel` ("stage 1 replica 0") and a
 * process exit with `describeExit`, both in core's error-messages.ts and exported from
 * `@omnistage/core/runtime` for plugins and the CLI. Hand-written copies drifted ("signal X" here,
 * "killed by signal X" there); this lists every one left in packages/∗/src.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGES_DIR, packageSources } from './source-files.js';
import { describeExit, replicaLabel } from '../../src/error-messages.js';

/** Lines that spell the phrase on purpose: file, a piece of the line, and why. */
const ALLOWED: [file: string, line: string, why: string][] = [
  ['core/src/error-messages.ts', '', 'the factories themselves'],
  [
    'core/src/planning/lock-devices.ts',
    '`Stage ${stageIdx} replica',
    "a stage index (upstream's stage_idx), not an id",
  ],
  ['cli/src/status-display.ts', '.padEnd(3)} replica ${', 'the padded columns of the status table'],
];

const PHRASES: [string, RegExp][] = [
  ['replica label (use replicaLabel)', /stage \$\{[^}]*\} replica \$\{/gi],
  ['process exit (use describeExit)', /(signal|exit code) \$\{[^}]*\.(signal|code)\}/g],
];

function offenders(): string[] {
  const found: string[] = [];
  for (const file of packageSources()) {
    const rel = relative(PACKAGES_DIR, file);
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const [what, re] of PHRASES) {
        if ((line.match(re) ?? []).length === 0) continue;
        if (ALLOWED.some(([f, piece]) => f === rel && line.includes(piece))) continue;
        found.push(`${rel}:${i + 1}: ${what}: ${line.trim()}`);
      }
    });
  }
  return found;
}

describe('one spelling per phrase', () => {
  it('no message in packages/*/src spells a replica label or a process exit by hand', () => {
    expect(offenders()).toEqual([]);
  });

  it('the factories read as the messages always did', () => {
    expect([
      replicaLabel({ stage_id: 2, replica_id: 1 }),
      replicaLabel({ stage_id: 0, replica_id: 0 }, 4242),
      describeExit({ code: 3, signal: null }),
      describeExit({ code: null, signal: 'SIGKILL' }),
    ]).toEqual(['stage 2 replica 1', 'stage 0 replica 0 (pid 4242)', 'exit code 3', 'killed by signal SIGKILL']);
  });

  it('the check finds a hand-spelt label (it can fail)', () => {
    const sample = 'throw new Error(`stage ${r.stage_id} replica ${r.replica_id} died (signal ${exit.signal})`);';
    expect(PHRASES.map(([, re]) => (sample.match(re) ?? []).length)).toEqual([1, 1]);
  });
});
