import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isOmniError } from '../../src/errors.js';
import {
  launchProcess,
  type LaunchedProcess,
  type LaunchOptions,
  type OutputStream,
} from '../../src/launch/launch-process.js';
import { setprivPath } from '../../src/launch/setpriv.js';
import { FIXTURES, isAlive, killTracked, requireBuilt, trackPid, waitFor } from './helpers.js';

const hasSetpriv = setprivPath() !== null;

function launch(opts: Omit<LaunchOptions, 'env'> & { env?: LaunchOptions['env'] }): LaunchedProcess {
  const proc = launchProcess({ env: process.env, ...opts });
  trackPid(proc.pid);
  return proc;
}

/** Resolves with the first line matching `re` (its first capture group). */
function lineMatching(lines: string[], re: RegExp, timeoutMs = 5_000): Promise<string> {
  return (async () => {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      for (const line of lines) {
        const m = re.exec(line);
        if (m) return m[1] ?? m[0];
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no line matching ${re} in ${JSON.stringify(lines)}`);
  })();
}

beforeAll(() => requireBuilt('launch/launch-process.ts', 'launch/group-shim.ts', 'launch/setpriv.ts'));

afterEach(() => {
  killTracked();
});

describe('launchProcess', () => {
  it('delivers stdout and stderr lines and keeps the last ones', async () => {
    const seen: [OutputStream, string][] = [];
    const proc = launch({
      command: 'sh',
      args: ['-c', 'echo out1; echo err1 >&2; echo out2; printf "no newline"'],
      keepLastLines: 3,
      onLine: (stream, line) => seen.push([stream, line]),
    });
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(seen.filter(([s]) => s === 'stdout').map(([, l]) => l)).toEqual(['out1', 'out2', 'no newline']);
    expect(seen.filter(([s]) => s === 'stderr').map(([, l]) => l)).toEqual(['err1']);
    // stdout and stderr are separate pipes: only the arrival order is defined
    expect(proc.lastLines()).toEqual(seen.slice(-3).map(([, l]) => l));
    expect(proc.exitStatus()).toEqual({ code: 0, signal: null });
  });

  it('cuts an endless output line instead of buffering it (a 600 MiB line once crashed the orchestrator)', async () => {
    const seen: string[] = [];
    // 600 MiB without a newline, in 1 MiB writes, then two ordinary lines.
    const script =
      "const b=Buffer.alloc(1<<20,97);let n=600;const go=()=>{while(n>0){n--;if(!process.stdout.write(b))return process.stdout.once('drain',go)}process.stdout.write('\\nafter\\n');process.stdout.write('x'.repeat(3000)+'\\n')};go()";
    const proc = launch({
      command: process.execPath,
      args: ['-e', script],
      maxLineBytes: 2048,
      onLine: (_s, line) => seen.push(line),
    });
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    await waitFor(() => seen.length === 3, 30_000);
    expect(seen[0]!.startsWith('a'.repeat(2048) + '…')).toBe(true);
    expect(seen[0]).toContain(
      `${600 * 1024 * 1024 - 2048} more bytes dropped: output lines of a replica are cut at 2048 bytes`,
    );
    expect(seen[1]).toBe('after');
    // Said once per process: later cut lines only count what they lost.
    expect(seen[2]).toBe(`${'x'.repeat(2048)}… [952 more bytes dropped]`);
  }, 120_000);

  it('passes exactly the given environment', async () => {
    const lines: string[] = [];
    const proc = launch({
      command: 'sh',
      args: ['-c', 'echo "$OMNI_TEST_VAR|${HOME:-unset}"'],
      env: { PATH: process.env['PATH'], OMNI_TEST_VAR: 'x1' },
      onLine: (_s, l) => lines.push(l),
    });
    await proc.exited;
    expect(lines).toEqual(['x1|unset']);
  });

  it.each([false, true])('reports exit codes and signals (groupShim: %s)', async (groupShim) => {
    expect(await launch({ command: 'sh', args: ['-c', 'exit 7'], groupShim }).exited).toEqual({
      code: 7,
      signal: null,
    });
    expect(await launch({ command: 'sh', args: ['-c', 'kill -KILL $$'], groupShim }).exited).toEqual({
      code: null,
      signal: 'SIGKILL',
    });
  });

  it('gives a group-shimmed command the stdin pipe, not /dev/null', async () => {
    const lines: string[] = [];
    const proc = launch({
      command: 'sh',
      args: ['-c', 'if [ -S /dev/stdin ] || [ -p /dev/stdin ]; then echo pipe; else echo other; fi'],
      groupShim: true,
      onLine: (_s, l) => lines.push(l),
    });
    await proc.exited;
    expect(lines).toEqual(['pipe']);
  });

  it('stop() sends TERM, then KILL after the grace to a child that ignores TERM', async () => {
    const lines: string[] = [];
    const proc = launch({
      command: process.execPath,
      args: [
        '-e',
        "process.on('SIGTERM', () => console.log('got TERM')); console.log('ready'); setInterval(() => {}, 1000)",
      ],
      onLine: (_s, l) => lines.push(l),
    });
    await lineMatching(lines, /^ready$/);
    const t0 = performance.now();
    const exit = await proc.stop(400);
    const took = performance.now() - t0;
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect(lines).toContain('got TERM');
    expect(took).toBeGreaterThanOrEqual(390);
    expect(took).toBeLessThan(1_500);
    expect(isAlive(proc.pid)).toBe(false);
    // safe to call again and after exit
    expect(await proc.stop(400)).toEqual(exit);
    expect(proc.kill('SIGTERM')).toBe(false);
  });

  it('stop() returns as soon as a cooperative child exits on TERM', async () => {
    const lines: string[] = [];
    const proc = launch({
      command: 'sh',
      args: ['-c', 'echo ready; exec sleep 1000'],
      onLine: (_s, l) => lines.push(l),
    });
    await lineMatching(lines, /^ready$/);
    const t0 = performance.now();
    expect(await proc.stop(5_000)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it.each([false, true])(
    'stop() kills grandchildren in the group, even TERM-ignoring ones (groupShim: %s)',
    async (groupShim) => {
      const lines: string[] = [];
      const proc = launch({
        command: 'sh',
        args: ['-c', 'sleep 1000 & echo "gc $!"; (trap "" TERM; exec sleep 1000) & echo "gc $!"; wait'],
        groupShim,
        shimGraceMs: 300,
        onLine: (_s, l) => lines.push(l),
      });
      await waitFor(() => lines.length >= 2, 5_000);
      const grandchildren = lines.map((l) => Number(l.split(' ')[1]));
      grandchildren.forEach(trackPid);
      expect(grandchildren.every(isAlive)).toBe(true);
      await proc.stop(300);
      expect(await waitFor(() => !grandchildren.some(isAlive), 2_000)).toBe(true);
    },
  );

  it('kills what a worker leaves in its group when it exits', async () => {
    const lines: string[] = [];
    const proc = launch({
      command: 'sh',
      args: ['-c', 'sleep 1000 & echo "gc $!"; exit 3'],
      onLine: (_s, l) => lines.push(l),
    });
    // The grandchild holds stdout open; exited must not wait for it forever.
    expect(await proc.exited).toEqual({ code: 3, signal: null });
    const gc = Number(await lineMatching(lines, /^gc (\d+)$/));
    trackPid(gc);
    expect(await waitFor(() => !isAlive(gc), 2_000)).toBe(true);
  });

  it('throws OMNI_SPAWN_FAILED with a hint for a missing command', () => {
    for (const command of ['omnistage-no-such-binary', '/nonexistent/dir/worker']) {
      let caught: unknown;
      try {
        launch({ command, args: [], errorContext: { stage_id: 4, replica_id: 1 } });
      } catch (err) {
        caught = err;
      }
      expect(isOmniError(caught)).toBe(true);
      if (!isOmniError(caught)) return;
      expect(caught.code).toBe('OMNI_SPAWN_FAILED');
      expect(caught.message).toContain(command);
      expect(caught.hint).toBeTruthy();
      expect(caught.context).toMatchObject({ stage_id: 4, replica_id: 1, phase: 'spawn' });
    }
  });

  describe.runIf(hasSetpriv)('when the orchestrator is SIGKILLed', { timeout: 30_000 }, () => {
    beforeAll(() => requireBuilt('launch/launch-process.ts'));

    function startIntermediate(mode: string): { kill(): Promise<void>; lines: string[] } {
      const child = spawn(process.execPath, [join(FIXTURES, 'intermediate-parent.mjs'), mode], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      trackPid(child.pid);
      const lines: string[] = [];
      createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      return {
        lines,
        kill: async () => {
          child.kill('SIGKILL');
          await exited;
        },
      };
    }

    it('its replica dies too (setpriv --pdeathsig)', async () => {
      const parent = startIntermediate('plain');
      const sleeper = Number(await lineMatching(parent.lines, /^leader (\d+)$/));
      trackPid(sleeper);
      expect(isAlive(sleeper)).toBe(true);
      await parent.kill();
      const t0 = performance.now();
      expect(await waitFor(() => !isAlive(sleeper), 15_000)).toBe(true);
      console.log(`[measure] replica dead ${(performance.now() - t0).toFixed(0)} ms after orchestrator SIGKILL`);
    });

    it('in group-shim mode its grandchildren die too', async () => {
      const parent = startIntermediate('shim');
      const shim = Number(await lineMatching(parent.lines, /^leader (\d+)$/));
      const grandchild = Number(await lineMatching(parent.lines, /^grandchild (\d+)$/));
      trackPid(shim);
      trackPid(grandchild);
      expect(isAlive(grandchild)).toBe(true);
      await parent.kill();
      expect(await waitFor(() => !isAlive(shim) && !isAlive(grandchild), 15_000)).toBe(true);
    });

    it('(control) without a parent-death signal the replica survives', async () => {
      const parent = startIntermediate('nopdeath');
      const sleeper = Number(await lineMatching(parent.lines, /^leader (\d+)$/));
      trackPid(sleeper);
      await parent.kill();
      await new Promise((r) => setTimeout(r, 500));
      expect(isAlive(sleeper)).toBe(true); // killed by afterEach
    });
  });
});
