// Prints one closing line for the whole monorepo test run ("tests: N passed, N failed"), summed
// from each package's vitest JSON report, so CI logs end with a count instead of turbo's task list.
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
// `--reset` runs before the tests, so a report left by an earlier run can never be counted.
const reset = process.argv.includes('--reset');
let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
for (const group of ['packages', 'examples']) {
  const dir = join(root, group);
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir)) {
    const pkg = join(dir, name, 'package.json');
    if (!existsSync(pkg) || !JSON.parse(readFileSync(pkg, 'utf8')).scripts?.test) continue;
    // `.vitest-report.json`, and one per further run of a package's tests (core and the CLI run
    // some a second time with OMNISTAGE_NO_NATIVE=1: `.vitest-report-no-native.json`).
    const reports = readdirSync(join(dir, name))
      .filter((f) => /^\.vitest-report(-[a-z-]+)?\.json$/.test(f))
      .map((f) => join(dir, name, f));
    if (reset) {
      for (const report of reports) rmSync(report, { force: true });
      continue;
    }
    if (!reports.some((r) => r.endsWith('/.vitest-report.json'))) {
      missing.push(`${group}/${name}`);
      continue;
    }
    for (const report of reports) {
      const r = JSON.parse(readFileSync(report, 'utf8'));
      passed += r.numPassedTests ?? 0;
      failed += r.numFailedTests ?? 0;
      skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    }
  }
}
if (reset) process.exit(0);
if (missing.length > 0) {
  console.error(`no test report from: ${missing.join(', ')}`);
  failed += missing.length;
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed > 0 ? 1 : 0;
