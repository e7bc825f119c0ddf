/**
 * A plugin written outside the repository (no node_modules of its own) that imports
 * `@omnistage/core` loads, and its import resolves to the running core's own module (one URL, one
 * instance: hooks are identity-sensitive). A plugin importing a package that is missing gets a hint naming that
 * package, not "check the path".
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, STACK_LINE, createSandbox, requireBuiltCli, runCleanups, runCli, type Sandbox } from './helpers.js';

let box: Sandbox;
const outside = mkdtempSync(join(tmpdir(), 'omnistage-plugin-outside-'));
beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
});
afterAll(async () => {
  rmSync(outside, { recursive: true, force: true });
  await runCleanups();
});

const PIPELINE =
  'plugins:\n  - ./tts.mjs\nstage_args:\n  - stage_id: 0\n    stage_type: tts\n    runtime: { devices: "0" }\n';

describe('a plugin outside the repository', { timeout: 60_000 }, () => {
  it('imports @omnistage/core and gets the running instance', async () => {
    writeFileSync(
      join(outside, 'tts.mjs'),
      `import { definePlugin } from '@omnistage/core';
// The module URL the plugin's import resolved to: one URL is one module instance.
const core = import.meta.resolve('@omnistage/core');
export default definePlugin({
  name: 'tts',
  apply(api) {
    api.defineStageType({ name: 'tts', defaultEngine: 'e', devicesPerReplica: () => 1, validateStage: (_stage, ctx) => ctx.warn(\`core: \${core}\`) });
    api.defineEngine({ stageType: 'tts', name: 'e', resolveWorker: () => ({ command: 'true', args: [], env: {}, attach: 'control' }) });
  },
});
`,
    );
    writeFileSync(join(outside, 'pipeline.yaml'), PIPELINE);
    const r = await runCli(['validate', join(outside, 'pipeline.yaml'), '--platform', 'cpu'], { tmpDir: box.tmp });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('valid');
    expect(r.stderr).toContain(`core: ${pathToFileURL(join(REPO_ROOT, 'packages', 'core', 'dist', 'index.js')).href}`);
  });

  it('a package the plugin imports that is not installed is named in the hint', async () => {
    writeFileSync(
      join(outside, 'needs.mjs'),
      "import 'left-pad-not-installed';\nexport default { name: 'x', apply() {} };\n",
    );
    writeFileSync(join(outside, 'needs.yaml'), PIPELINE.replace('./tts.mjs', './needs.mjs'));
    const r = await runCli(['validate', join(outside, 'needs.yaml'), '--platform', 'cpu'], { tmpDir: box.tmp });
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr).toMatch(/hint: .*left-pad-not-installed.*npm install left-pad-not-installed/);
    expect(r.stderr).not.toContain('check the path');
  });
});
