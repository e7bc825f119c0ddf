import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { OmniError } from '../../src/errors.js';
import { LineDecoder } from '../../src/control/framing.js';
import {
  controlEnv,
  encodeMessage,
  PROTOCOL_VERSION,
  type OutputMessage,
  type WorkerMessage,
} from '../../src/control/protocol.js';
import { ControlServer, type ControlServerOptions } from '../../src/control/server.js';
import { createControlToken } from '../../src/control/token.js';
import { launchProcess, type LaunchedProcess } from '../../src/launch/launch-process.js';
import {
  cleanupTempDirs,
  FIXTURES,
  isAlive,
  killTracked,
  requireBuilt,
  tempDir,
  trackPid,
  waitFor,
} from './helpers.js';

const WORKER = join(FIXTURES, 'echo-worker.mjs');
const servers: ControlServer[] = [];

async function startServer(options: Partial<Omit<ControlServerOptions, 'run_id'>> = {}): Promise<ControlServer> {
  const server = await ControlServer.listen(join(await tempDir(), 'control.sock'), { run_id: 'run-1', ...options });
  servers.push(server);
  return server;
}

function startWorker(
  server: ControlServer,
  token: string,
  ids = { stage_id: 2, replica_id: 1 },
): { proc: LaunchedProcess; lines: string[] } {
  const lines: string[] = [];
  const proc = launchProcess({
    command: process.execPath,
    args: [WORKER],
    env: { ...process.env, ...controlEnv({ socketPath: server.socketPath, token, run_id: 'run-1', ...ids }) },
    onLine: (_s, l) => lines.push(l),
  });
  trackPid(proc.pid);
  return { proc, lines };
}

/** A raw client that speaks the protocol by hand. */
async function rawClient(path: string): Promise<{ socket: Socket; lines: string[]; closed: Promise<void> }> {
  const socket = createConnection(path);
  const lines: string[] = [];
  const decoder = new LineDecoder();
  socket.on('data', (c: Buffer) => lines.push(...decoder.push(c)));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, lines, closed };
}

function collectOutputs(messages: WorkerMessage[], requestId: string): OutputMessage[] {
  return messages.filter((m): m is OutputMessage => m.type === 'output' && m.request_id === requestId);
}

beforeAll(() =>
  requireBuilt(
    'worker/index.ts',
    'worker/connection.ts',
    'worker/run-worker.ts',
    'control/protocol.ts',
    'control/framing.ts',
  ),
);

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
  killTracked();
  await cleanupTempDirs();
});

describe('control protocol with a real worker', () => {
  it('does hello → welcome → ready → request/output → abort → shutdown', async () => {
    const server = await startServer();
    const token = createControlToken();
    const channel = server.expect(token, {
      stage_id: 2,
      replica_id: 1,
      engine_args: { model: 'tiny' },
      metadata: { stage_type: 'llm' },
    });
    const t0 = performance.now();
    const { proc, lines } = startWorker(server, token);

    const hello = await channel.hello;
    expect(hello).toMatchObject({ v: PROTOCOL_VERSION, stage_id: 2, replica_id: 1, pid: proc.pid });
    const ready = await channel.waitReady({ deadline: Date.now() + 10_000 });
    console.log(`[measure] spawn → ready of a node worker (SDK): ${(performance.now() - t0).toFixed(0)} ms`);
    expect(ready.info).toEqual({ pid: proc.pid, stage: 2 });
    expect(channel.connected).toBe(true);

    const messages: WorkerMessage[] = [];
    channel.onMessage((m) => messages.push(m));

    expect(channel.send({ type: 'request', request_id: 'r1', input: 'hi', params: {} })).toBe(true);
    await waitFor(() => collectOutputs(messages, 'r1').some((m) => m.done), 5_000);
    expect(collectOutputs(messages, 'r1')).toEqual([
      { type: 'output', request_id: 'r1', seq: 0, data: { echo: 'hi', part: 0 }, done: false },
      {
        type: 'output',
        request_id: 'r1',
        seq: 1,
        data: { echo: 'hi', part: 1, engine_args: { model: 'tiny' } },
        done: true,
      },
    ]);

    channel.send({ type: 'request', request_id: 'r2', input: 'fail', params: {} });
    await waitFor(() => messages.some((m) => m.type === 'request_error'), 5_000);
    expect(messages.find((m) => m.type === 'request_error')).toEqual({
      type: 'request_error',
      request_id: 'r2',
      message: 'asked to fail',
    });

    channel.send({ type: 'request', request_id: 'r3', input: 'slow', params: {} });
    channel.send({ type: 'abort', request_id: 'r3' });
    expect(await waitFor(() => lines.includes('aborted r3'), 5_000)).toBe(true);
    expect(collectOutputs(messages, 'r3')).toEqual([]);

    channel.send({ type: 'shutdown', reason: 'test over' });
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(lines).toContain('shutdown: test over');
    expect(await channel.closed).toEqual({ error: null });
  });

  it('the worker exits 0 when the orchestrator closes the connection', async () => {
    const server = await startServer();
    const token = createControlToken();
    const channel = server.expect(token, { stage_id: 2, replica_id: 1 });
    const { proc, lines } = startWorker(server, token);
    await channel.ready;
    channel.close();
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(lines).toContain('shutdown: the control connection closed');
  });

  it('the worker exits 0 when its piped stdin reaches EOF', async () => {
    const server = await startServer();
    const token = createControlToken();
    const channel = server.expect(token, { stage_id: 2, replica_id: 1 });
    const child = spawn(process.execPath, [WORKER], {
      env: {
        ...process.env,
        ...controlEnv({ socketPath: server.socketPath, token, run_id: 'run-1', stage_id: 2, replica_id: 1 }),
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    trackPid(child.pid);
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await channel.ready;
    child.stdin.end();
    expect(await exited).toBe(0);
    expect(lines).toContain('shutdown: stdin closed');
    await channel.closed;
  });

  it('rejects a worker with a wrong token; the real replica can still attach', async () => {
    const server = await startServer();
    const token = createControlToken();
    const channel = server.expect(token, { stage_id: 2, replica_id: 1 });
    const impostor = startWorker(server, createControlToken());
    expect(await impostor.proc.exited).toEqual({ code: 1, signal: null });
    expect(impostor.lines.join('\n')).toContain('unknown token');

    const { proc } = startWorker(server, token);
    await channel.ready;
    expect((await channel.hello).pid).toBe(proc.pid);
    await proc.stop(2_000);
  });

  it('rejects mismatched ids for a valid token and fails that channel at once', async () => {
    const server = await startServer();
    const token = createControlToken();
    const channel = server.expect(token, { stage_id: 2, replica_id: 1 });
    const { proc } = startWorker(server, token, { stage_id: 2, replica_id: 0 });
    const err = (await channel.hello.catch((e: unknown) => e)) as OmniError;
    expect(err.code).toBe('OMNI_PROTOCOL');
    expect(err.message).toContain('replica 0');
    expect(err.context).toMatchObject({ stage_id: 2, replica_id: 1, pid: proc.pid });
    await expect(channel.ready).rejects.toMatchObject({ code: 'OMNI_PROTOCOL' });
    expect(await proc.exited).toEqual({ code: 1, signal: null });
  });

  it('closes unknown tokens, a reused token and silent connections with an error message', async () => {
    const server = await startServer({ helloTimeoutMs: 200 });
    const token = createControlToken();
    const channel = server.expect(token, { stage_id: 0, replica_id: 0 });
    const hello = (t: string) =>
      encodeMessage({ type: 'hello', v: PROTOCOL_VERSION, token: t, stage_id: 0, replica_id: 0, pid: 1 });

    const unknown = await rawClient(server.socketPath);
    unknown.socket.write(hello('not-a-token'));
    await unknown.closed;
    expect(JSON.parse(unknown.lines[0]!)).toMatchObject({
      type: 'error',
      code: 'OMNI_PROTOCOL',
      message: 'unknown token',
    });

    const good = await rawClient(server.socketPath);
    good.socket.write(hello(token));
    await channel.hello;
    await waitFor(() => good.lines.length > 0, 2_000);
    expect(JSON.parse(good.lines[0]!)).toMatchObject({ type: 'welcome', run_id: 'run-1', stage_id: 0, replica_id: 0 });

    const second = await rawClient(server.socketPath);
    second.socket.write(hello(token));
    await second.closed;
    expect(JSON.parse(second.lines[0]!)).toMatchObject({ type: 'error' });
    expect(channel.connected).toBe(true);

    const silent = await rawClient(server.socketPath);
    await silent.closed;
    expect(JSON.parse(silent.lines[0]!)).toMatchObject({ type: 'error', message: 'no hello received in time' });
    good.socket.destroy();
  });

  it('lets a connection buffer only a few KiB before its hello', async () => {
    // A long hello timeout: only the size limit can end this connection within the test's time.
    const server = await startServer({ helloTimeoutMs: 120_000 });
    const client = await rawClient(server.socketPath);
    client.socket.write('x'.repeat(64 * 1024)); // no newline: an unauthenticated peer filling memory
    await client.closed;
    expect(JSON.parse(client.lines[0]!)).toMatchObject({ type: 'error', code: 'OMNI_PROTOCOL' });
    expect(JSON.parse(client.lines[0]!).message).toMatch(/before its hello/);
  });

  it('logs rejected connections at warn, one line per interval with a count of the rest', async () => {
    const warnings: string[] = [];
    const server = await startServer({
      helloTimeoutMs: 120_000,
      rejectLogIntervalMs: 600_000,
      warn: (m) => warnings.push(m),
    });
    for (let i = 0; i < 5; i++) {
      const client = await rawClient(server.socketPath);
      client.socket.write(
        `${JSON.stringify({ type: 'hello', v: PROTOCOL_VERSION, token: `bad-${i}`, stage_id: 0, replica_id: 0, pid: 1 })}\n`,
      );
      await client.closed;
    }
    // The first rejection is said at once; the other four wait for the interval (or close).
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/rejected a control connection: unknown token/);
    await server.close();
    expect(warnings).toHaveLength(2);
    expect(warnings[1]).toMatch(/4 more control connections rejected/);
  });

  it('drops a replica that sends an over-long line or garbage after hello', async () => {
    const server = await startServer({ maxLineBytes: 1024 });
    for (const [i, payload] of [`${'x'.repeat(2048)}\n`, 'not json\n'].entries()) {
      const token = createControlToken();
      const channel = server.expect(token, { stage_id: 0, replica_id: i });
      const client = await rawClient(server.socketPath);
      client.socket.write(
        encodeMessage({ type: 'hello', v: PROTOCOL_VERSION, token, stage_id: 0, replica_id: i, pid: 1 }),
      );
      await channel.hello;
      client.socket.write(payload);
      const { error } = await channel.closed;
      expect(error?.code).toBe('OMNI_PROTOCOL');
      await expect(channel.ready).rejects.toMatchObject({ code: 'OMNI_PROTOCOL' });
      await client.closed;
      expect(client.lines.some((l) => (JSON.parse(l) as { type: string }).type === 'error')).toBe(true);
    }
  });

  it('waitReady times out naming the attach step, and honours abort', async () => {
    const server = await startServer();
    const channel = server.expect(createControlToken(), { stage_id: 3, replica_id: 0 });
    await expect(channel.waitReady({ deadline: Date.now() + 100 })).rejects.toMatchObject({
      code: 'OMNI_ATTACH_TIMEOUT',
      context: { stage_id: 3, replica_id: 0, phase: 'attach', attach_step: 'hello' },
    });
    const controller = new AbortController();
    const waiting = channel.waitReady({ signal: controller.signal });
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'OMNI_CANCELLED' });
  });

  it('close() fails pending channels, closes connections and removes the socket file', async () => {
    const server = await startServer();
    const token = createControlToken();
    const connected = server.expect(token, { stage_id: 0, replica_id: 0 });
    const pending = server.expect(createControlToken(), { stage_id: 0, replica_id: 1 });
    const { proc } = startWorker(server, token, { stage_id: 0, replica_id: 0 });
    await connected.ready;
    await server.close();
    expect(existsSync(server.socketPath)).toBe(false);
    await expect(pending.hello).rejects.toMatchObject({ code: 'OMNI_CANCELLED' });
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(() => server.expect(createControlToken(), { stage_id: 0, replica_id: 2 })).toThrow();
  });

  it('replaces a socket file left by a dead orchestrator but refuses a live one', async () => {
    const dir = await tempDir();
    const path = join(dir, 'control.sock');
    const dead = spawn(
      process.execPath,
      ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    trackPid(dead.pid);
    await new Promise((resolve) => dead.stdout.once('data', resolve));
    await expect(ControlServer.listen(path, { run_id: 'x' })).rejects.toMatchObject({ code: 'OMNI_ENVIRONMENT' });
    dead.kill('SIGKILL');
    await new Promise((resolve) => dead.once('exit', resolve));
    expect(existsSync(path)).toBe(true);
    const server = await ControlServer.listen(path, { run_id: 'x' });
    servers.push(server);
    expect(isAlive(dead.pid!)).toBe(false);
  });
});
