#!/usr/bin/env node
// Dry-runs vLLM-Omni stage-config files without GPUs: prints each file's plan, then brings it up on
// reference engines and virtual devices, sends one request through every stage, and tears down.
// Usage: npx omnistage-dry-run [file.yaml ...]   (default: every file in this example's configs/;
// files are relative to the working directory; outputs go to this example's out/)
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { basename, dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(
    'usage: npx omnistage-dry-run [file.yaml ...]   (default: every vLLM-Omni file in examples/upstream-dry-run/configs)',
  );
  process.exit(0);
}
const bin = join(here, '..', '..', 'packages', 'cli', 'bin', 'omnistage.js');
const files =
  process.argv.slice(2).length > 0
    ? process.argv.slice(2).map((f) => resolve(f))
    : readdirSync(join(here, 'configs'))
        .filter((f) => f.endsWith('.yaml'))
        .sort()
        .map((f) => join(here, 'configs', f));

let failed = 0;
for (const file of files) {
  console.log(`\n=== ${file.startsWith(`${here}/`) ? file.slice(here.length + 1) : file}`);
  // A deploy file without `pipeline:` gets its topology from the model it is served with; with no
  // model here, the file stem names the registered pipeline (as upstream's default deploy files do).
  const text = readFileSync(file, 'utf8');
  const byModel = !/^stage_args:/m.test(text) && !/^pipeline:/m.test(text) && !/^base_config:/m.test(text);
  const common = [
    '--platform',
    'cpu',
    '--engine',
    'reference',
    ...(byModel ? ['--pipeline', basename(file, '.yaml')] : []),
  ];
  for (const args of [
    ['plan', file, ...common],
    [
      'run',
      file,
      ...common,
      '--input',
      'hello from a laptop',
      '--out',
      join('out', basename(file, '.yaml')),
      '--log-level',
      'error',
    ],
  ]) {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: here, stdio: 'inherit' });
    if (r.status !== 0) {
      failed++;
      console.error(`omnistage ${args[0]} ${file} exited ${r.status}`);
      break;
    }
  }
}
process.exitCode = failed > 0 ? 1 : 0;
