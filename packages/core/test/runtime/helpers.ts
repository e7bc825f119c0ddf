import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processState } from '../../src/launch/proc-state.js';

/** packages/core */
export const CORE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(CORE_DIR, 'test', 'runtime', 'fixtures');

/**
 * Child-process fixtures import the built package (dist/). Fail with a clear message instead of
 * testing stale code when a source file is newer than its build output.
 */
export function requireBuilt(...srcFiles: string[]): void {
  for (const src of srcFiles) {
    const srcPath = join(CORE_DIR, 'src', src);
    const distPath = join(CORE_DIR, 'dist', src.replace(/\.ts$/, '.js'));
    if (!existsSync(distPath) || statSync(distPath).mtimeMs < statSync(srcPath).mtimeMs) {
      throw new Error(`dist/ is missing or older than src/${src}: run \`npm run build\` in packages/core first`);
    }
  }
}

/** Temp directories made through {@link tempDir}, removed by {@link cleanupTempDirs}. */
const dirs: string[] = [];

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'omni-test-'));
  dirs.push(dir);
  return dir;
}

export async function cleanupTempDirs(): Promise<void> {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
}

/** Pids started by a test, SIGKILLed (with their groups) in afterEach if still alive. */
const pids = new Set<number>();

export function trackPid(pid: number | undefined): void {
  if (pid !== undefined) pids.add(pid);
}

export function killTracked(): void {
  for (const pid of pids) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  pids.clear();
}

/**
 * Whether `pid` is a live process. A zombie ('Z') counts as dead: in this sandbox PID 1 does not
 * reap orphans, so a killed orphan stays a zombie forever.
 */
export function isAlive(pid: number): boolean {
  const state = processState(pid);
  return state !== null && state !== 'Z' && state !== 'X';
}

export async function waitFor(predicate: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (predicate()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
