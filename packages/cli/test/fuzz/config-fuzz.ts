/**
 * A seeded configuration fuzzer: mutates pipeline files and `--stage-overrides` texts and runs each
 * through the real loader and planner in a worker thread with a time budget and a heap cap, so a
 * crash, a hang and a memory blow-up are all recorded instead of taking the test runner down.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/** One input: a file text (with the path it pretends to have) and optional overrides. */
export interface FuzzInput {
  id: number;
  label: string;
  text: string;
  path: string;
  stageOverrides?: string;
}

export interface FuzzOutcome {
  id: number;
  kind: 'ok' | 'error' | 'crash' | 'hang' | 'oom';
  ms: number;
  code?: string;
  exitCode?: number;
  located?: boolean;
  message?: string;
}

export interface FuzzReport {
  inputs: number;
  accepted: number;
  refused: number;
  crashes: { input: FuzzInput; outcome: FuzzOutcome }[];
  hangs: { input: FuzzInput; outcome: FuzzOutcome }[];
  /** Refused, but not with exit code 2 and a location. */
  unlocated: { input: FuzzInput; outcome: FuzzOutcome }[];
  slowestMs: number;
  peakRssMiB: number;
  wallMs: number;
}

/** Mulberry32: small, fast and the same sequence for the same seed everywhere. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HOSTILE_VALUES = [
  '1e308',
  '-1e308',
  '.nan',
  '.inf',
  '-.inf',
  '1.5',
  '0',
  '-1',
  '1000000000',
  '1e6',
  '100000000',
  '4097',
  '65537',
  "''",
  'null',
  '~',
  'true',
  '[]',
  '{}',
  '[1, 2]',
  '&a [*a]',
  '*nope',
  '!!omap [a: 1, b: 2]',
  '!!pairs [a: 1]',
  '!!set {a}',
  '!!binary aGk=',
  '!!timestamp 2001-01-01',
  '0x10',
  'constructor',
  '__proto__',
  'toString',
  '{constructor: 1}',
  '{__proto__: 1}',
  '{valueOf: x, toString: 2}',
  '"0,1,2,3,4,5,6,7"',
  '"0-3"',
  '[0, 0, 0]',
  '{"0": 1}',
  '[[[[[[[[1]]]]]]]]',
  '!!str',
  '!custom x',
  '|\n  block',
  "'a: b'",
  '"\\u0000"',
  '9007199254740993',
];
const HOSTILE_KEYS = [
  'constructor',
  '__proto__',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'devices',
  'num_replicas',
  'tensor_parallel_size',
  'stage_id',
  'engine_input_source',
  'edges',
  'platforms',
  'stage_args',
  'stages',
  'engine_args',
  'runtime',
  'temperature',
  'default_sampling_params',
  'connectors',
  'base_config',
  'pipeline',
  'modes',
  '<<',
  '? complex',
  '"quoted key"',
];
const OVERRIDE_KEYS = [
  'devices',
  'num_replicas',
  'env',
  'restart',
  'engine',
  'default_sampling_params',
  'engine_args',
  'runtime',
  'tensor_parallel_size',
  'gpu_memory_utilization',
  'max_num_seqs',
  'constructor',
  '__proto__',
  'toString',
  'stage_id',
  'engine_input_source',
  'parallel_config',
  'temperature',
];
const NOISE = ':-[]{}&*!|>#\'"\t\n ,?%@`0123456789abc';

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

/** One random edit of a YAML text. */
export function mutateText(r: () => number, text: string): string {
  const lines = text.split('\n');
  const at = Math.floor(r() * lines.length);
  const line = lines[at] ?? '';
  const indent = /^\s*(?:- )?/.exec(line)?.[0] ?? '';
  switch (Math.floor(r() * 10)) {
    case 0:
    case 1: {
      const m = /^(\s*(?:- )?[^:#\s][^:#]*:)\s*\S.*$/.exec(line);
      lines[at] = m
        ? `${m[1]} ${pick(r, HOSTILE_VALUES)}`
        : `${indent}${pick(r, HOSTILE_KEYS)}: ${pick(r, HOSTILE_VALUES)}`;
      break;
    }
    case 2: {
      const m = /^(\s*(?:- )?)[^:#\s][^:#]*:(.*)$/.exec(line);
      if (m) lines[at] = `${m[1]}${pick(r, HOSTILE_KEYS)}:${m[2]}`;
      break;
    }
    case 3:
      lines.splice(at, 1);
      break;
    case 4:
      lines.splice(at, 0, line);
      break;
    case 5:
      lines.splice(at, 0, `${indent}${pick(r, HOSTILE_KEYS)}: ${pick(r, HOSTILE_VALUES)}`);
      break;
    case 6: {
      const pos = Math.floor(r() * (line.length + 1));
      lines[at] = line.slice(0, pos) + pick(r, [...NOISE]) + line.slice(pos + (r() < 0.5 ? 1 : 0));
      break;
    }
    case 7: {
      // Anchor a value and refer to it from inside itself or from a merge key.
      const m = /^(\s*(?:- )?[^:#\s][^:#]*:)\s*(.*)$/.exec(line);
      if (m) lines[at] = r() < 0.5 ? `${m[1]} &s [*s]` : `${m[1]} &s {<<: *s, x: 1}`;
      break;
    }
    case 8:
      return lines.slice(0, at).join('\n') + line.slice(0, Math.floor(r() * line.length));
    default: {
      const other = Math.floor(r() * lines.length);
      [lines[at], lines[other]] = [lines[other] ?? '', line];
    }
  }
  return lines.join('\n');
}

/** A random `--stage-overrides` text, mostly well-formed YAML/JSON with hostile parts. */
export function randomOverrides(r: () => number, stageIds: readonly number[]): string {
  const roll = r();
  if (roll < 0.1)
    return pick(r, [
      '&a [*a]',
      '{"0": &a [*a]}',
      '{',
      '[',
      '"0"',
      '',
      '{"0": {<<: *x}}',
      '&m {"0": {<<: *m}}',
      'a: &a [*a, *a]',
    ]);
  const entries: string[] = [];
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const id =
      r() < 0.85
        ? String(pick(r, stageIds.length > 0 ? stageIds : [0]))
        : pick(r, ['-1', 'x', '99', '1.5', 'constructor', '__proto__']);
    const body: string[] = [];
    const m = 1 + Math.floor(r() * 3);
    for (let j = 0; j < m; j++)
      body.push(
        `${pick(r, OVERRIDE_KEYS)}: ${pick(
          r,
          HOSTILE_VALUES.filter((v) => !v.includes('\n')),
        )}`,
      );
    entries.push(`"${id}": {${body.join(', ')}}`);
  }
  const text = `{${entries.join(', ')}}`;
  return r() < 0.2 ? mutateText(r, text) : text;
}

/** The seed corpus: upstream fixtures shipped in the repository and the examples' pipeline files. */
export function seedCorpus(repo: string): { path: string; text: string }[] {
  const dirs = [join(repo, 'examples', 'upstream-dry-run', 'configs')];
  const files = dirs.flatMap((d) =>
    readdirSync(d)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join(d, f)),
  );
  for (const ex of readdirSync(join(repo, 'examples'))) {
    try {
      files.push(join(repo, 'examples', ex, 'pipeline.yaml'));
      readFileSync(files[files.length - 1]!);
    } catch {
      files.pop();
    }
  }
  return files.sort().map((path) => ({ path, text: readFileSync(path, 'utf8') }));
}

/** Stage ids a text declares (for overrides that name real stages). */
export function stageIdsOf(text: string): number[] {
  return [...text.matchAll(/stage_id:\s*(\d+)/g)].map((m) => Number(m[1]));
}

/** Generates `fileMutations` mutated files and `overrideMutations` override texts from `seed`. */
export function generateInputs(
  repo: string,
  seed: number,
  fileMutations: number,
  overrideMutations: number,
): FuzzInput[] {
  const r = rng(seed);
  const corpus = seedCorpus(repo);
  const inputs: FuzzInput[] = [];
  for (let i = 0; i < fileMutations; i++) {
    const base = pick(r, corpus);
    let text = base.text;
    const edits = 1 + Math.floor(r() * 3);
    for (let e = 0; e < edits; e++) text = mutateText(r, text);
    inputs.push({ id: inputs.length, label: `${base.path} (${edits} edits)`, text, path: base.path });
  }
  for (let i = 0; i < overrideMutations; i++) {
    const base = pick(r, corpus);
    inputs.push({
      id: inputs.length,
      label: `${base.path} with overrides`,
      text: base.text,
      path: base.path,
      stageOverrides: randomOverrides(r, stageIdsOf(base.text)),
    });
  }
  return inputs;
}

/**
 * Runs every input in a worker thread; one that takes longer than `budgetMs` is stopped and
 * recorded as a hang, one that exhausts `heapMiB` as a crash (out of memory).
 */
export async function runFuzz(
  inputs: readonly FuzzInput[],
  options: { budgetMs: number; heapMiB: number },
): Promise<FuzzReport> {
  const workerUrl = new URL('./fuzz-worker.mjs', import.meta.url);
  const report: FuzzReport = {
    inputs: inputs.length,
    accepted: 0,
    refused: 0,
    crashes: [],
    hangs: [],
    unlocated: [],
    slowestMs: 0,
    peakRssMiB: 0,
    wallMs: 0,
  };
  const t0 = performance.now();
  let worker: Worker | undefined;
  const sample = (): void => {
    report.peakRssMiB = Math.max(report.peakRssMiB, process.memoryUsage().rss / 2 ** 20);
  };
  const sampler = setInterval(sample, 25);
  try {
    for (const input of inputs) {
      worker ??= new Worker(workerUrl, { resourceLimits: { maxOldGenerationSizeMb: options.heapMiB } });
      const w = worker;
      const outcome = await new Promise<FuzzOutcome>((resolve) => {
        const started = performance.now();
        const timer = setTimeout(
          () => resolve({ id: input.id, kind: 'hang', ms: performance.now() - started }),
          options.budgetMs,
        );
        const done = (o: FuzzOutcome): void => {
          clearTimeout(timer);
          w.off('message', done);
          w.off('error', failed);
          resolve(o);
        };
        const failed = (err: Error): void =>
          done({ id: input.id, kind: 'oom', ms: performance.now() - started, message: err.message });
        w.on('message', done);
        w.once('error', failed);
        w.postMessage({ id: input.id, text: input.text, path: input.path, stageOverrides: input.stageOverrides });
      });
      sample();
      report.slowestMs = Math.max(report.slowestMs, outcome.ms);
      if (outcome.kind === 'hang' || outcome.kind === 'oom') {
        await w.terminate();
        worker = undefined;
      }
      if (outcome.kind === 'ok') report.accepted++;
      else if (outcome.kind === 'error') {
        report.refused++;
        if (outcome.exitCode !== 2 || outcome.located !== true) report.unlocated.push({ input, outcome });
      } else if (outcome.kind === 'hang') report.hangs.push({ input, outcome });
      else report.crashes.push({ input, outcome });
    }
  } finally {
    clearInterval(sampler);
    await worker?.terminate();
  }
  report.wallMs = performance.now() - t0;
  return report;
}
