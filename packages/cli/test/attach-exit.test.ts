/**
 * A plugin engine whose process exits while it attaches ends the CLI with exit 1 and the
 * replica's exit code, for both attach kinds: the control protocol (the worker dials the control
 * socket) and HTTP (omnistage polls a readiness URL). Nothing may keep the CLI alive afterwards.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STACK_LINE, createSandbox, requireBuiltCli, runCleanups, runCli, type Sandbox } from './helpers.js';

let box: Sandbox;
beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
});
afterAll(runCleanups);

function pluginFor(attach: 'control' | 'http'): string {
  const file = join(box.root, `exits-${attach}.mjs`);
  // The worker lives a moment (so the attach has begun), then exits 7.
  const spec =
    attach === 'http'
      ? "{ command: process.execPath, args: ['-e', 'setTimeout(() => process.exit(7), 300)'], env: {}, attach: 'http', port: ctx.port ?? 1, readiness_url: 'http://127.0.0.1:9/health' }"
      : "{ command: process.execPath, args: ['-e', 'setTimeout(() => process.exit(7), 300)'], env: {}, attach: 'control' }";
  writeFileSync(
    file,
    `export default {
  name: 'exits-${attach}',
  apply(omni) {
    omni.defineStageType({ name: 'dies', defaultEngine: 'e', devicesPerReplica: () => 1 });
    omni.defineEngine({ stageType: 'dies', name: 'e', resolveWorker: (ctx) => (${spec}) });
  },
};
`,
  );
  const pipeline = join(box.root, `exits-${attach}.yaml`);
  writeFileSync(
    pipeline,
    `plugins:\n  - ./exits-${attach}.mjs\nstage_args:\n  - stage_id: 0\n    stage_type: dies\n    runtime: { devices: "0" }\n`,
  );
  return pipeline;
}

describe('a worker that exits during attach ends the CLI', { timeout: 90_000 }, () => {
  it.each(['control', 'http'] as const)('attach: %s', async (attach) => {
    const r = await runCli(
      [
        'up',
        pluginFor(attach),
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--stage-init-timeout',
        '60',
        '--events',
        box.eventsFile(`exits-${attach}`),
      ],
      {
        tmpDir: box.tmp,
        timeoutMs: 45_000,
      },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('OMNI_WORKER_EXITED');
    expect(r.stderr).toMatch(/exit code 7/);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});
