#!/usr/bin/env node
// Committed shim, so `npx omnistage` is linked at `npm ci` time, before dist/ exists. In a source
// checkout that was never built (a fresh clone after `npm ci`), the first call builds the CLI and
// the packages it needs with turbo, once, then runs; an installed package always has its dist/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/main.js', import.meta.url);
const root = new URL('../../../', import.meta.url);
const turbo = new URL('node_modules/.bin/turbo', root);

function fail(message) {
  process.stderr.write(`omnistage: ${message}\n`);
  process.exit(1);
}

if (!existsSync(main)) {
  if (!existsSync(new URL('turbo.json', root)) || !existsSync(turbo)) {
    fail(`${fileURLToPath(main)} is missing: this installation of omnistage is incomplete; reinstall it`);
  }
  process.stderr.write('omnistage: first run in this checkout: building it (turbo run build), once...\n');
  const built = spawnSync(
    fileURLToPath(turbo),
    ['run', 'build', '--filter=omnistage...', '--output-logs=errors-only'],
    {
      cwd: fileURLToPath(root),
      stdio: ['ignore', 2, 2],
    },
  );
  if (built.status !== 0 || !existsSync(main))
    fail('the build failed (see above); `npm run build` at the repository root shows why');
}

try {
  await import(main.href);
} catch (err) {
  // A checkout where the CLI was built but a package it imports was not (or was cleaned).
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  fail(`${err.message.split('\n')[0]}\n  hint: build the workspace first: npm run build (at the repository root)`);
}
