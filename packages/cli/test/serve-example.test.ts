/**
 * examples/serve as its README gives it: the `npx omnistage serve` line (with `--port 0` added, so
 * a busy port 8000 cannot fail the test), its `curl` line and its openai client script.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createSandbox, requireBuiltCli, runCleanups, waitFor } from './helpers.js';

const EXAMPLE = join(REPO_ROOT, 'examples', 'serve');
const shBlocks = [...readFileSync(join(EXAMPLE, 'README.md'), 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
  m[1]!.trim(),
);

describe('examples/serve runs with the commands in its README', () => {
  afterAll(async () => runCleanups(), 60_000);

  it('serves; the README curl line and client.mjs (openai) get text, audio, an image and speech; Ctrl-C (SIGINT to its process group) drains and exits 0', async () => {
    requireBuiltCli();
    const box = await createSandbox();
    const [start, curl, client] = shBlocks;
    expect(start).toBe('npx omnistage serve examples/serve/pipeline.yaml --platform cpu');
    const server = spawn('bash', ['-c', `exec ${start} --port 0 --log-format json`], {
      cwd: REPO_ROOT,
      env: { ...process.env, OMNISTAGE_LOCK_DIR: box.lockDir, TMPDIR: box.tmp },
      stdio: ['ignore', 'ignore', 'pipe'],
      // Its own process group, signalled as a whole below: what Ctrl-C in a terminal does.
      detached: true,
    });
    let stderr = '';
    server.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<string>((resolve) =>
      server.once('exit', (code, signal) => resolve(signal ?? `code ${code}`)),
    );
    try {
      expect(
        await waitFor(
          () => /serving \\?"omni-demo\\?" at http:\/\/127\.0\.0\.1:\d+\/v1/.test(stderr) || server.exitCode !== null,
          90_000,
        ),
        stderr,
      ).toBe(true);
      const url = /serving \\?"omni-demo\\?" at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr)![1]!;

      const c = spawnSync('bash', ['-c', curl!.replaceAll('http://127.0.0.1:8000', url)], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(c.status, c.stderr).toBe(0);
      const answer = JSON.parse(c.stdout) as { choices: { message: { content: string } }[] };
      expect(answer.choices[0]!.message.content).toMatch(/\w+ \w+/);

      rmSync(join(EXAMPLE, 'out'), { recursive: true, force: true });
      expect(client).toBe('node examples/serve/client.mjs');
      const r = spawnSync('bash', ['-c', client!], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, OMNISTAGE_URL: `${url}/v1` },
      });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^text: \w+/m);
      expect(r.stdout).toMatch(/^streamed: \w+/m);
      for (const f of ['answer.wav', 'hello.wav'])
        expect(
          readFileSync(join(EXAMPLE, 'out', f))
            .subarray(0, 4)
            .toString('latin1'),
        ).toBe('RIFF');
      expect(
        readFileSync(join(EXAMPLE, 'out', 'lighthouse.png'))
          .subarray(1, 4)
          .toString('latin1'),
      ).toBe('PNG');
    } finally {
      process.kill(-server.pid!, 'SIGINT');
      // omnistage (same group) drains, tears down, logs, exits 0, and npx (its script shell is bash, which
      // execs the bin: the repo's .npmrc) waits for it and exits as it did.
      const drained = await waitFor(() => stderr.includes('drained and stopped'), 30_000);
      const npx = await Promise.race([
        exited,
        new Promise<string>((resolve) => setTimeout(() => resolve('late'), 10_000)),
      ]);
      if (!drained || npx === 'late') process.kill(-server.pid!, 'SIGKILL');
      rmSync(join(EXAMPLE, 'out'), { recursive: true, force: true });
      expect(drained, stderr).toBe(true);
      expect(npx).toBe('code 0');
    }
  }, 180_000);
});
