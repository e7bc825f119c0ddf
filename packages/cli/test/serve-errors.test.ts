/** `omnistage serve` refuses bad options before anything starts, and a taken port before any replica starts. */
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { STACK_LINE, createSandbox, requireBuiltCli, runCleanups, runCli } from './helpers.js';
import { SERVE_EXAMPLE } from './serve-helpers.js';

describe('omnistage serve: usage and listen errors', () => {
  afterEach(async () => runCleanups(), 30_000);

  it.each([
    [['--port', '70000'], /--port must be an integer from 0 to 65535, got "70000"/],
    [['--max-inflight', '0'], /--max-inflight must be an integer from 1/],
    [['--max-inflight-per-replica', '0'], /--max-inflight-per-replica must be an integer from 1 to 1000000, got "0"/],
    [['--request-timeout', 'soon'], /--request-timeout must be a positive number of seconds/],
    [['--api-key', ' '], /the API key is empty/],
    [['--balance', 'random'], /--balance must be round-robin or least-inflight/],
  ])('%j → exit 2 with a clear line, nothing started', async (args, message) => {
    requireBuiltCli();
    const box = await createSandbox();
    const r = await runCli(
      [
        'serve',
        SERVE_EXAMPLE,
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        box.eventsFile('usage'),
        ...args,
      ],
      { tmpDir: box.tmp },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('OMNI_USAGE');
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.events.filter((e) => e.type === 'replica:spawned')).toEqual([]);
  });

  it('a port another program holds → OMNI_SERVE_LISTEN, exit 1, before any replica starts', async () => {
    requireBuiltCli();
    const box = await createSandbox();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const port = (holder.address() as { port: number }).port;
      const r = await runCli(
        [
          'serve',
          SERVE_EXAMPLE,
          '--platform',
          'cpu',
          '--port',
          String(port),
          '--lock-dir',
          box.lockDir,
          '--events',
          box.eventsFile('listen'),
        ],
        { tmpDir: box.tmp },
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`OMNI_SERVE_LISTEN`);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect(r.stderr).toContain('choose another with --port');
      expect(r.events.filter((e) => e.type === 'replica:spawned')).toEqual([]);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
