import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const LOGGER = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '../dist/logger.js')).href;

/**
 * A process that logs 20 MiB through the CLI's JSON logger, its stderr a pipe; after logging it
 * reports on stdout that its event loop is free again. With `hold`, nobody reads the pipe until
 * the report came (a stalled log reader: systemd, docker, `| less`).
 */
function logThroughPipe(): Promise<{ report: { done: boolean }; stderr: string; code: number | null }> {
  const script = `
    const { createCliLogger } = await import(${JSON.stringify(LOGGER)});
    const logger = createCliLogger('json', 'info');
    const line = 'x'.repeat(200);
    for (let i = 0; i < 100_000; i++) logger.info({ stage: 0, replica: 0, stream: 'stdout' }, line);
    // The loop is free: a timer fires although the reader has not read a byte.
    setTimeout(() => process.stdout.write(JSON.stringify({ done: true }) + '\\n'), 10);
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // Only now start reading stderr: until the report, the pipe stayed full.
      if (out.includes('\n') && child.stderr.isPaused())
        child.stderr.on('data', (e: Buffer) => (err += e.toString())).resume();
    });
    child.stderr.pause();
    child.once('error', reject);
    child.once('close', (code) => {
      try {
        resolve({ report: JSON.parse(out.split('\n')[0]!) as { done: boolean }, stderr: err, code });
      } catch (e) {
        reject(new Error(`no report on stdout (${String(e)}); stdout: ${out.slice(0, 200)}`));
      }
    });
  });
}

describe('CLI logger with stderr a pipe', () => {
  it('a reader that does not read never blocks the event loop: lines past the queue are dropped, counted and the count is logged', async () => {
    const { report, stderr, code } = await logThroughPipe();
    expect(report.done).toBe(true);
    expect(code).toBe(0);
    const lines = stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; level: number });
    // The queue held what it could (8 MiB of ~300-byte lines), the rest was dropped, and said so.
    const note = lines.find((l) => /log lines dropped/.test(l.msg));
    expect(note).toBeDefined();
    const dropped = Number(/^(\d+) log lines dropped: stderr was not read fast enough/.exec(note!.msg)![1]);
    const logged = lines.filter((l) => l.msg === 'x'.repeat(200)).length;
    expect(logged + dropped).toBe(100_000);
    expect(dropped).toBeGreaterThan(0);
  }, 120_000);
});
