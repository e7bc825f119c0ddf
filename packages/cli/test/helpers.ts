/**
 * Helpers for the CLI acceptance tests: they run the real `omnistage` bin (bin/omnistage.js →
 * dist/main.js) as a child process, with real replica processes, real device locks in a temp lock
 * dir, and read the `--events FILE` JSON lines. Nothing is mocked.
 *
 * Every CLI run gets `TMPDIR=<sandbox>/tmp`, so the run directory it creates (control socket) lands
 * in the sandbox, where a test can check that teardown removed it and where `rm -rf` of the
 * sandbox removes whatever a SIGKILLed orchestrator had to leave behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** packages/cli */
export const CLI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = join(CLI_DIR, '..', '..');
export const CLI_BIN = join(CLI_DIR, 'bin', 'omnistage.js');
export const TEST_FIXTURES = join(CLI_DIR, 'test', 'fixtures');
/**
 * The upstream vLLM-Omni stage configs: `shared/fixtures/upstream-stage-configs` beside the
 * repository when it is there, else the verbatim copies the upstream-dry-run example ships.
 */
export const UPSTREAM_FIXTURES = existsSync(join(REPO_ROOT, '..', 'shared', 'fixtures', 'upstream-stage-configs'))
  ? join(REPO_ROOT, '..', 'shared', 'fixtures', 'upstream-stage-configs')
  : join(REPO_ROOT, 'examples', 'upstream-dry-run', 'configs');

/**
 * The stage-config fixtures without a `pipeline:` key that upstream selects by model: their file
 * stem is the pipeline, passed as `--pipeline` (upstream's deploy-yamls.json).
 */
export function upstreamSelection(name: string): string[] {
  return ['bagel.yaml', 'glm_image.yaml', 'qwen3_omni_moe.yaml'].includes(name)
    ? ['--pipeline', name.replace(/\.yaml$/, '')]
    : [];
}

/** Fails with a clear message when the CLI was not built (the tests run the built bin). */
export function requireBuiltCli(): void {
  for (const f of [join(CLI_DIR, 'dist', 'main.js'), join(REPO_ROOT, 'packages', 'core', 'dist', 'index.js')]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npx turbo run build\` at the repository root first`);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate` every `stepMs` until it is true (→ true) or `timeoutMs` passed (→ false). */
export async function waitFor(predicate: () => boolean, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (predicate()) return true;
    if (Date.now() >= end) return false;
    await sleep(stepMs);
  }
}

/**
 * Whether `pid` is a live process. A zombie (`Z`) or dead (`X`) process counts as dead: PID 1 in
 * this sandbox does not reap orphans, so a killed orphan may stay a zombie forever.
 */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // The state follows the parenthesised command name, which may itself contain ') '.
  const close = stat.lastIndexOf(')');
  const state = stat.slice(close + 2, close + 3);
  return state !== 'Z' && state !== 'X';
}

// ---------------------------------------------------------------------------------------------
// Cleanup registry

const cleanups: (() => unknown)[] = [];

/** Registers a cleanup step; {@link runCleanups} runs them newest first (in afterEach/afterAll). */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

export async function runCleanups(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      await fn();
    } catch {
      // best effort: one failing cleanup must not keep the others from running
    }
  }
}

function killHard(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sandbox: a temp root with a lock dir, a TMPDIR for the CLI and room for events files

export interface Sandbox {
  readonly root: string;
  /** `--lock-dir` of the runs (created by omnistage itself on first use). */
  readonly lockDir: string;
  /** TMPDIR of the CLI processes: their run directories (`omnistage-run-*`) land here. */
  readonly tmp: string;
  /** A fresh events file path inside the sandbox. */
  eventsFile(name: string): string;
  /** Entries left in the lock dir (lock directories, holder files, temp files). */
  lockDirLeftovers(): string[];
  /** Run directories left in the CLI's TMPDIR. */
  runDirLeftovers(): string[];
}

/** Creates a sandbox under the OS temp dir; removed by {@link runCleanups}. */
export async function createSandbox(): Promise<Sandbox> {
  const root = await mkdtemp(join(tmpdir(), 'omnistage-clitest-'));
  onCleanup(() => rm(root, { recursive: true, force: true }));
  const lockDir = join(root, 'locks');
  const tmp = join(root, 'tmp');
  await mkdir(tmp);
  let n = 0;
  const list = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);
  return {
    root,
    lockDir,
    tmp,
    eventsFile: (name) => join(root, `${name}-${n++}.events.jsonl`),
    lockDirLeftovers: () => list(lockDir),
    runDirLeftovers: () => list(tmp).filter((e) => e.startsWith('omnistage-run-')),
  };
}

// ---------------------------------------------------------------------------------------------
// Events

/** One line of `--events FILE`. */
export interface OmniEventLine {
  type: string;
  ts: number;
  run_id?: string;
  [key: string]: unknown;
}

/**
 * Reads an events file. `strict` (for assertions) fails on any line that is not a JSON object;
 * otherwise (while polling a running process) a trailing line without its newline is skipped.
 */
export function readEvents(file: string, strict = false): OmniEventLine[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const last = lines.pop();
  if (last !== undefined && last !== '' && strict)
    throw new Error(`events file ${file} ends without a newline: ${last}`);
  const out: OmniEventLine[] = [];
  for (const line of lines) {
    if (line === '' && !strict) continue;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      out.push(parsed as OmniEventLine);
    } catch (err) {
      if (strict)
        throw new Error(
          `events file ${file} has a line that is not a JSON object: ${JSON.stringify(line)} (${(err as Error).message})`,
        );
    }
  }
  return out;
}

const PHASES = ['metadata', 'args', 'worker', 'lock', 'spawn', 'attach'];

/**
 * Checks the documented shape of every event (done-when 7). Returns a list of problems (empty
 * when every event is well formed); unknown event types only need `ts` and `type`.
 */
export function eventSchemaProblems(events: readonly OmniEventLine[]): string[] {
  const problems: string[] = [];
  const num = (e: OmniEventLine, k: string): void => {
    if (typeof e[k] !== 'number') problems.push(`${e.type}: ${k} is not a number in ${JSON.stringify(e)}`);
  };
  const str = (e: OmniEventLine, k: string): void => {
    if (typeof e[k] !== 'string') problems.push(`${e.type}: ${k} is not a string in ${JSON.stringify(e)}`);
  };
  const nullable = (e: OmniEventLine, k: string, t: 'number' | 'string'): void => {
    if (!(k in e) || (e[k] !== null && typeof e[k] !== t))
      problems.push(`${e.type}: ${k} is not ${t} | null in ${JSON.stringify(e)}`);
  };
  const replica = (e: OmniEventLine): void => {
    num(e, 'stage_id');
    num(e, 'replica_id');
  };
  for (const e of events) {
    if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) problems.push(`ts is not a number in ${JSON.stringify(e)}`);
    if (typeof e.type !== 'string') {
      problems.push(`type is not a string in ${JSON.stringify(e)}`);
      continue;
    }
    switch (e.type) {
      case 'replica:phase':
        replica(e);
        if (!PHASES.includes(e['phase'] as string))
          problems.push(`replica:phase: unknown phase in ${JSON.stringify(e)}`);
        if (e['status'] !== 'start' && e['status'] !== 'end')
          problems.push(`replica:phase: bad status in ${JSON.stringify(e)}`);
        break;
      case 'pipeline:planned': {
        const placement = e['placement'];
        if (!Array.isArray(placement) || placement.length !== e['replicas'])
          problems.push(`pipeline:planned: placement is not one entry per replica in ${JSON.stringify(e)}`);
        break;
      }
      case 'replica:queued':
        replica(e);
        num(e, 'group');
        if (typeof e['behind'] !== 'object' || e['behind'] === null)
          problems.push(`replica:queued: bad behind in ${JSON.stringify(e)}`);
        break;
      case 'lock:acquired':
      case 'lock:released':
        replica(e);
        str(e, 'device');
        num(e, 'pid');
        break;
      case 'lock:waiting':
        replica(e);
        str(e, 'device');
        if (!('holder' in e) || (e['holder'] !== null && typeof e['holder'] !== 'object'))
          problems.push(`lock:waiting: bad holder in ${JSON.stringify(e)}`);
        break;
      case 'replica:spawned':
      case 'replica:ready':
        replica(e);
        num(e, 'pid');
        break;
      case 'replica:exit':
        replica(e);
        num(e, 'pid');
        nullable(e, 'code', 'number');
        nullable(e, 'signal', 'string');
        break;
      case 'replica:failed':
        replica(e);
        str(e, 'phase');
        str(e, 'code');
        str(e, 'message');
        break;
      case 'pipeline:failed':
        str(e, 'code');
        str(e, 'message');
        break;
      case 'payload:stored':
        str(e, 'key');
        str(e, 'via');
        num(e, 'size');
        nullable(e, 'stage_id', 'number');
        nullable(e, 'request_id', 'string');
        if (!Array.isArray(e['holders']) || !e['holders'].every((h) => typeof h === 'string'))
          problems.push(`payload:stored: bad holders in ${JSON.stringify(e)}`);
        break;
      case 'payload:freed':
        str(e, 'key');
        str(e, 'via');
        if (!['acknowledged', 'request_ended', 'unheld', 'teardown'].includes(e['reason'] as string))
          problems.push(`payload:freed: unknown reason in ${JSON.stringify(e)}`);
        break;
      case 'payload:swept':
        num(e, 'files');
        break;
      case 'run:reaped':
        str(e, 'stale_run_id');
        num(e, 'pid');
        num(e, 'payload_files');
        break;
      default:
        break;
    }
  }
  return problems;
}

/** Pids of the replicas a run spawned (from its `replica:spawned` events). */
export function replicaPids(events: readonly OmniEventLine[]): number[] {
  return events.filter((e) => e.type === 'replica:spawned').map((e) => e['pid'] as number);
}

/** `[acquired ts, released ts]` per device of one run's events (released = Infinity if never). */
export function lockIntervals(events: readonly OmniEventLine[]): Map<string, [number, number, string][]> {
  const out = new Map<string, [number, number, string][]>();
  const open = new Map<string, number>();
  for (const e of events) {
    const key = `${String(e['device'])}/${String(e['stage_id'])}/${String(e['replica_id'])}`;
    if (e.type === 'lock:acquired') open.set(key, e.ts);
    if (e.type === 'lock:released') {
      const since = open.get(key);
      open.delete(key);
      const list = out.get(String(e['device'])) ?? [];
      list.push([
        since ?? -Infinity,
        e.ts,
        `${e.run_id ?? '?'} stage ${String(e['stage_id'])} replica ${String(e['replica_id'])}`,
      ]);
      out.set(String(e['device']), list);
    }
  }
  for (const [key, since] of open) {
    const device = key.split('/')[0]!;
    const list = out.get(device) ?? [];
    list.push([since, Infinity, `${key} (never released)`]);
    out.set(device, list);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Running the CLI

export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The `--events` file of this run, if one was given. */
  readonly eventsFile: string | undefined;
  stdout(): string;
  stderr(): string;
  /** Exit status once the process exited (null before). */
  exitStatus(): CliExit | null;
  /** Resolves when the process exited and its output pipes closed (bounded). */
  readonly exited: Promise<CliExit>;
  /** Events so far (tolerant of a partial last line). */
  events(): OmniEventLine[];
  /** Waits for the first event matching `pred`; fails early when the process exits without it. */
  waitForEvent(pred: (e: OmniEventLine) => boolean, timeoutMs?: number): Promise<OmniEventLine>;
  /** Waits for the exit; SIGKILLs the process and fails when it takes longer than `timeoutMs`. */
  waitExit(timeoutMs?: number): Promise<CliExit>;
  signal(sig: NodeJS.Signals): void;
  /** What a failed assertion should show: exit status, stderr tail, event types. */
  describe(): string;
}

export interface StartOptions {
  /** Directory the run's TMPDIR points into (the sandbox's `tmp`). */
  tmpDir?: string;
  env?: Record<string, string>;
  cwd?: string;
}

/**
 * Starts `node bin/omnistage.js ...args` (directly, not through a shell, so SIGINT is delivered).
 * When `args` contain `--events FILE`, {@link CliProcess.events} reads it. The process and every
 * replica it reported are SIGKILLed by {@link runCleanups} if still alive.
 */
export function startCli(args: readonly string[], options: StartOptions = {}): CliProcess {
  const i = args.indexOf('--events');
  const eventsFile = i >= 0 ? args[i + 1] : undefined;
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...(options.tmpDir ? { TMPDIR: options.tmpDir } : {}), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error('could not spawn the omnistage CLI');
  const pid = child.pid;
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  let status: CliExit | null = null;
  const exitedOnly = new Promise<CliExit>((resolve) => {
    child.once('exit', (code, signal) => {
      status = { code, signal };
      resolve(status);
    });
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = exitedOnly.then(async (s) => {
    await Promise.race([closed, sleep(2_000)]);
    return s;
  });

  const events = (): OmniEventLine[] => (eventsFile ? readEvents(eventsFile) : []);
  onCleanup(() => {
    if (status === null) killHard(pid);
    for (const p of replicaPids(events())) if (isAlive(p)) killHard(p);
  });

  const proc: CliProcess = {
    child,
    pid,
    eventsFile,
    stdout: () => out,
    stderr: () => err,
    exitStatus: () => status,
    exited,
    events,
    async waitForEvent(pred, timeoutMs = 30_000) {
      let found: OmniEventLine | undefined;
      const ok = await waitFor(() => {
        found = events().find(pred);
        return found !== undefined || status !== null;
      }, timeoutMs);
      // One more read: the event may have been written just before the exit.
      found ??= events().find(pred);
      if (found) return found;
      throw new Error(
        `${ok ? 'the CLI exited before' : 'timed out waiting for'} the expected event\n${proc.describe()}`,
      );
    },
    async waitExit(timeoutMs = 30_000) {
      const result = await Promise.race([exited, sleep(timeoutMs).then(() => null)]);
      if (result === null) {
        const why = proc.describe();
        killHard(pid);
        throw new Error(`the CLI did not exit within ${timeoutMs} ms\n${why}`);
      }
      return result;
    },
    signal(sig) {
      child.kill(sig);
    },
    describe() {
      const types = events().map((e) => e.type);
      return [
        `omnistage ${args.join(' ')}`,
        `exit: ${JSON.stringify(status)}`,
        `events: ${types.join(', ') || '(none)'}`,
        `stderr (tail):\n${err.split('\n').slice(-25).join('\n')}`,
      ].join('\n');
    },
  };
  return proc;
}

export interface CliResult extends CliExit {
  stdout: string;
  stderr: string;
  events: OmniEventLine[];
}

/** Runs the CLI to completion (SIGKILL and failure after `timeoutMs`). */
export async function runCli(
  args: readonly string[],
  options: StartOptions & { timeoutMs?: number } = {},
): Promise<CliResult> {
  const proc = startCli(args, options);
  const exit = await proc.waitExit(options.timeoutMs ?? 30_000);
  return {
    ...exit,
    stdout: proc.stdout(),
    stderr: proc.stderr(),
    events: proc.eventsFile ? readEvents(proc.eventsFile, true) : [],
  };
}

/** Waits until none of `pids` is alive; returns how long that took, or null on timeout. */
export async function waitAllDead(pids: readonly number[], timeoutMs: number): Promise<number | null> {
  const t0 = performance.now();
  const ok = await waitFor(() => pids.every((p) => !isAlive(p)), timeoutMs, 10);
  return ok ? performance.now() - t0 : null;
}

/** A stack trace line as Node prints it (`    at fn (file:line:col)`). */
export const STACK_LINE = /^\s+at .+[:(]\d+:\d+\)?$/m;
