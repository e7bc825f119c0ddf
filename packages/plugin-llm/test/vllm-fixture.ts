/**
 * Helpers for the tests that bring `engine: vllm` pipelines up against the stand-in `vllm`
 * (fixtures/fake-vllm.mjs): free ports, temp dirs, the fake's records, and a process check.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isOmniError, type OmniError } from '@omnistage/core';

/** The stand-in `vllm` executable. */
export const FAKE_VLLM = fileURLToPath(new URL('./fixtures/fake-vllm.mjs', import.meta.url));

/** What the fake wrote about itself at start. */
export interface FakeVllmRecord {
  pid: number;
  ppid: number;
  argv: string[];
  model: string;
  host: string;
  port: number;
  flags: Record<string, string[]>;
  env: Record<string, string>;
  cwd: string;
}

/** One line of `<pid>.requests.jsonl`. */
export type FakeVllmEvent =
  | { event: 'request'; id: string; path: string; body: Record<string, unknown> }
  | { event: 'disconnect'; id: string }
  | { event: 'refused'; id: string; reason: string };

/** Whether 127.0.0.1:port can be bound right now. */
export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * A base port P such that P + each offset is free now (found by binding port 0, then each port):
 * `vllm` replica r of the stage at index i listens on base + 100·i + r.
 */
export async function freeBasePort(offsets: readonly number[] = [0, 1, 100, 101]): Promise<number> {
  const top = Math.max(...offsets);
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await ephemeralPort();
    if (base + top > 65535) continue;
    const free = await Promise.all(offsets.map((o) => canBind(base + o)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free port range found');
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Every record the fake wrote in `dir`, by port. */
export async function readRecords(dir: string): Promise<Map<number, FakeVllmRecord>> {
  const out = new Map<number, FakeVllmRecord>();
  for (const name of await readdir(dir)) {
    if (!/^\d+\.json$/.test(name)) continue;
    const rec = JSON.parse(await readFile(join(dir, name), 'utf8')) as FakeVllmRecord;
    out.set(rec.port, rec);
  }
  return out;
}

/** The request log of the fake with `pid`. */
export async function readEvents(dir: string, pid: number): Promise<FakeVllmEvent[]> {
  const text = await readFile(join(dir, `${pid}.requests.jsonl`), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as FakeVllmEvent);
}

/** Whether a process with this pid exists (zombies of other parents count as gone after reaping). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Polls `check` until it holds or `ms` pass; returns the last result. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 3_000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Kills whatever a test left running (a safety net; the tests assert nothing is left). */
export function killLeftovers(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** The OmniError `p` rejects with (anything else is rethrown; fulfilling fails the test). */
export async function rejection(p: Promise<unknown>): Promise<OmniError> {
  try {
    await p;
  } catch (err) {
    if (isOmniError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}
