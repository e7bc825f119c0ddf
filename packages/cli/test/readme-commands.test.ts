/**
 * The root README's commands work as written. The dry-run of an upstream file is taken from the
 * README verbatim, run through a shell at the repository root, held until it is up and stopped
 * with Ctrl-C (SIGINT to its process group): exit 130, every replica stopped. And the examples
 * serve under a name that says what they are, not `pipeline`.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig, Omnistage } from '@omnistage/core';
import { upstreamPipelinesPlugin } from '@omnistage/plugin-upstream-pipelines';
import { servedModelName } from '../src/serve-options.js';
import { REPO_ROOT, createSandbox, onCleanup, requireBuiltCli, runCleanups, waitFor } from './helpers.js';

beforeAll(requireBuiltCli);
afterEach(runCleanups);

/** The README's commands that name a file of the repository (the others use a placeholder `pipeline.yaml`). */
function readmeCommandsOnRepoFiles(): string[] {
  const blocks = [...readFileSync(join(REPO_ROOT, 'README.md'), 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)];
  return blocks
    .flatMap((b) => b[1]!.split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('npx omnistage ') && / examples\//.test(l));
}

describe("the root README's commands as written", { timeout: 180_000 }, () => {
  it('the upstream dry-run comes up and stops on Ctrl-C (exit 130)', async () => {
    const commands = readmeCommandsOnRepoFiles();
    expect(commands).toContain(
      'npx omnistage up examples/upstream-dry-run/configs/qwen3_omni_moe.yaml --engine reference --platform cpu',
    );
    const box = await createSandbox();
    for (const command of commands) {
      const child = spawn('bash', ['-c', command], {
        cwd: REPO_ROOT,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TMPDIR: box.tmp, OMNISTAGE_LOCK_DIR: box.lockDir },
      });
      onCleanup(() => process.kill(-child.pid!, 'SIGKILL'));
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.resume();
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      expect(await waitFor(() => stderr.includes('pipeline is up') || child.exitCode !== null, 120_000), stderr).toBe(
        true,
      );
      expect(stderr, command).toContain('pipeline is up: 3 stage(s)');
      expect(stderr).toContain('warning OMNI_WARN_PIPELINE_FROM_FILE_NAME');
      process.kill(-child.pid!, 'SIGINT');
      expect(await exited, stderr).toBe(130);
      expect(stderr.match(/stage \d replica 0: stopped/g)).toHaveLength(3);
    }
  });
});

describe('examples serve under a meaningful model name', () => {
  const omni = new Omnistage({ plugins: [upstreamPipelinesPlugin()] });
  it.each(['quickstart', 'omni-voice', 'custom-stage-type', 'third-party-plugin', 'talking-pipeline', 'serve'])(
    'examples/%s/pipeline.yaml',
    async (example) => {
      const config = await loadPipelineConfig(join(REPO_ROOT, 'examples', example, 'pipeline.yaml'), {
        platform: 'cpu',
        pipelines: () => omni.pipelines,
      });
      const name = servedModelName({}, config);
      expect(name).not.toBe('pipeline');
      expect(name).toBe(example === 'serve' ? 'omni-demo' : example);
    },
  );
});
