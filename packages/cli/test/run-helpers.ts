/**
 * Small helpers of the `omnistage run` acceptance tests (run-*.test.ts); process handling, sandboxes
 * and events come from ./helpers.ts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import {
  REPO_ROOT,
  TEST_FIXTURES,
  isAlive,
  replicaPids,
  waitAllDead,
  type CliResult,
  type OmniEventLine,
  type Sandbox,
} from './helpers.js';

export const QUICKSTART = join(REPO_ROOT, 'examples', 'quickstart', 'pipeline.yaml');
export const OMNI_VOICE = join(REPO_ROOT, 'examples', 'omni-voice', 'pipeline.yaml');
export const OMNI_VOICE_PROMPTS = join(REPO_ROOT, 'examples', 'omni-voice', 'prompts.txt');
export const RUN_FIXTURES = join(TEST_FIXTURES, 'run');

/** The sources the run tests exercise through the built CLI: dist must not be older. */
const SOURCES_AND_BUILDS: [string, string][] = [
  ['packages/cli/src/commands/run.ts', 'packages/cli/dist/commands/run.js'],
  ['packages/cli/src/output-writer.ts', 'packages/cli/dist/output-writer.js'],
  ['packages/core/src/orchestrate/router.ts', 'packages/core/dist/orchestrate/router.js'],
  ['packages/core/src/orchestrate/supervisor.ts', 'packages/core/dist/orchestrate/supervisor.js'],
  ['packages/core/src/orchestrate/input-processor.ts', 'packages/core/dist/orchestrate/input-processor.js'],
  ['packages/plugin-llm/src/reference/worker.ts', 'packages/plugin-llm/dist/reference/worker.js'],
  ['packages/plugin-diffusion/src/reference/worker.ts', 'packages/plugin-diffusion/dist/reference/worker.js'],
];

/** Fails clearly when a build output the run tests depend on is missing or stale. */
export function requireFreshBuild(): void {
  for (const [src, dist] of SOURCES_AND_BUILDS) {
    const s = join(REPO_ROOT, src);
    const d = join(REPO_ROOT, dist);
    if (!existsSync(d) || (existsSync(s) && statSync(d).mtimeMs < statSync(s).mtimeMs)) {
      throw new Error(
        `${dist} is missing or older than ${src}: run \`npx turbo run build\` at the repository root first`,
      );
    }
  }
}

/** A final output as `omnistage run --json` prints it. */
export interface RunRecord {
  request_id: string;
  stage_id: number;
  replica_id: number;
  type: string;
  text?: string;
  path?: string;
  reference_engine?: true;
}

/** Parses `--json` stdout: every non-empty line must be one JSON object. */
export function jsonRecords(stdout: string): RunRecord[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        throw new Error(`--json printed a line that is not JSON: ${line}`);
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw new Error(`--json printed a line that is not an object: ${line}`);
      return v as RunRecord;
    });
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Checks the PNG signature and the IHDR chunk; returns the image size. */
export function pngSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE), 'PNG signature').toBe(true);
  expect(bytes.subarray(12, 16).toString('latin1'), 'first chunk is IHDR').toBe('IHDR');
  expect(bytes.subarray(bytes.length - 8, bytes.length - 4).toString('latin1'), 'last chunk is IEND').toBe('IEND');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/** Checks a RIFF/WAVE header; returns the size of the data chunk. */
export function wavDataBytes(bytes: Buffer): number {
  expect(bytes.subarray(0, 4).toString('latin1')).toBe('RIFF');
  expect(bytes.subarray(8, 12).toString('latin1')).toBe('WAVE');
  expect(bytes.readUInt32LE(4)).toBe(bytes.length - 8);
  const data = bytes.indexOf('data', 12, 'latin1');
  expect(data).toBeGreaterThan(0);
  return bytes.readUInt32LE(data + 4);
}

export function readBytes(path: string): Buffer {
  return readFileSync(path);
}

/**
 * After a run exited: every replica process it spawned is gone (the orchestrator's own pid, reported
 * for inline replicas, excepted) and its TMPDIR holds nothing (no run dir, no socket, no payloads).
 */
export async function expectNothingLeft(box: Sandbox, events: readonly OmniEventLine[], cliPid: number): Promise<void> {
  const pids = replicaPids(events).filter((p) => p !== cliPid);
  const dead = await waitAllDead(pids, 5_000);
  expect(pids.filter(isAlive), 'replica processes still alive after the run').toEqual([]);
  expect(dead).not.toBeNull();
  expect(readdirSync(box.tmp), `left in the run's TMPDIR (${box.tmp})`).toEqual([]);
  expect(events.at(-1)?.type, 'the last event').toBe('pipeline:stopped');
}

/** `request:dispatched` events of one stage. */
export function dispatches(
  events: readonly OmniEventLine[],
  stageId: number,
): { request_id: string; replica_id: number; ts: number }[] {
  return events
    .filter((e) => e.type === 'request:dispatched' && e['stage_id'] === stageId)
    .map((e) => ({ request_id: e['request_id'] as string, replica_id: e['replica_id'] as number, ts: e.ts }));
}

/** What a failed assertion about a finished run should show. */
export function explain(r: CliResult): string {
  return `exit ${JSON.stringify({ code: r.code, signal: r.signal })}\nstderr (tail):\n${r.stderr.split('\n').slice(-30).join('\n')}`;
}
