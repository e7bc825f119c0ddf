import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { OmniError, type ErrorContext } from '../errors.js';
import { CappedLineSplitter, MAX_CHILD_LINE_BYTES } from './capped-lines.js';
import { groupShimArgv } from './group-shim.js';
import { LastLines } from './last-lines.js';
import { atProcessExit } from '../process/exit-tasks.js';
import { resolveCommand } from './resolve-command.js';
import { setprivPath } from './setpriv.js';
import type { ReplicaExit, ReplicaProcessHandle } from '../hooks/replica-handles.js';

/** Which output stream a line came from. */
export type OutputStream = 'stdout' | 'stderr';

/** The process to launch and how (env, cwd, group shim, parent-death signal, output). */
export interface LaunchOptions {
  command: string;
  args: readonly string[];
  /** The child's complete environment (`{...process.env, ...additions}`); nothing is inherited implicitly. */
  env: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  /**
   * Run under the process-group shim so that grandchildren die with the orchestrator too
   * (engines that fork, e.g. `vllm serve`). The reported pid is then the shim's.
   */
  groupShim?: boolean;
  /** In group-shim mode, how long the shim lets the group exit after TERM before KILL (default 3000). */
  shimGraceMs?: number;
  /** Arm a parent-death signal with `setpriv` when available (default true). */
  pdeathsig?: boolean;
  /**
   * Called for every output line (without the newline). Exceptions are swallowed. A line longer
   * than `maxLineBytes` arrives cut, ending in a note of how much was dropped (the first such
   * note of the process also says why).
   */
  onLine?(stream: OutputStream, line: string): void;
  /** Longest output line passed on whole (default {@link MAX_CHILD_LINE_BYTES}). */
  maxLineBytes?: number;
  /** Lines kept for error reports (default 50). */
  keepLastLines?: number;
  /** Stage/replica context put on OMNI_SPAWN_FAILED errors. */
  errorContext?: ErrorContext;
}

/** A running replica process, leader of its own process group. */
export interface LaunchedProcess {
  /** Pid of the group leader: the worker itself, or the shim in group-shim mode. */
  readonly pid: number;
  /** Whether a parent-death signal was armed (setpriv found and not disabled). */
  readonly pdeathsig: boolean;
  /** Resolves when the leader exited and its output was drained (capped at 250 ms). Never rejects. */
  readonly exited: Promise<ReplicaExit>;
  /** The exit status once known, else null. */
  exitStatus(): ReplicaExit | null;
  /** The last output lines, oldest first. */
  lastLines(): string[];
  /**
   * Closes stdin, SIGTERMs the whole group, waits up to `graceMs`, then SIGKILLs the group.
   * Resolves with the exit status; safe to call twice (the first call wins) and after exit.
   */
  stop(graceMs: number): Promise<ReplicaExit>;
  /** Sends `signal` to the whole group; false when the process already exited. */
  kill(signal: NodeJS.Signals): boolean;
}

const DEFAULT_KEEP_LINES = 50;
const DEFAULT_SHIM_GRACE_MS = 3_000;
const DRAIN_CAP_MS = 250;

/**
 * Starts a replica process with execa in its own process group (`detached`), stdin kept open
 * as a pipe (workers treat EOF as "orchestrator gone"), output streamed line by line (never
 * buffered) to `onLine` and a ring of last lines. On Linux with setpriv the child is armed with
 * a parent-death signal (SIGKILL; SIGTERM to the group shim), so it dies even when the
 * orchestrator is SIGKILLed. When the leader exits, whatever is left in its group is killed.
 *
 * Throws OMNI_SPAWN_FAILED synchronously when the command cannot be found or spawned.
 */
export function launchProcess(opts: LaunchOptions): LaunchedProcess {
  const cwd = opts.cwd ?? process.cwd();
  const resolved = resolveCommand(opts.command, opts.env, cwd);
  if (resolved === null) {
    throw new OmniError('OMNI_SPAWN_FAILED', `cannot start ${opts.command}: command not found or not executable`, {
      context: { ...opts.errorContext, phase: 'spawn' },
      hint: opts.command.includes('/')
        ? `check that ${opts.command} exists (relative to ${cwd}) and is executable`
        : `install ${opts.command} or put its directory on the PATH given to the replica (runtime.env.PATH)`,
    });
  }

  const setpriv = opts.pdeathsig === false ? null : setprivPath();
  const { file, argv } = buildArgv(resolved, opts, setpriv);

  let subprocess;
  try {
    subprocess = execa(file, argv, {
      env: opts.env,
      extendEnv: false,
      cwd,
      detached: true,
      buffer: false,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      reject: false,
      cleanup: true,
    });
  } catch (err) {
    throw spawnFailed(opts, err);
  }
  const pid = subprocess.pid;
  if (pid === undefined) {
    // Node reports spawn errors asynchronously; the result promise carries them, handled here.
    subprocess.catch(() => undefined);
    throw spawnFailed(opts, new Error('spawn returned no pid'));
  }

  // execa's `cleanup` does nothing for `detached` children: on a normal exit of this process its
  // live replica groups are terminated here (parent-death signals cover abnormal exits).
  const forgetGroup = atProcessExit(() => process.kill(-pid, 'SIGTERM'));
  const ring = new LastLines(opts.keepLastLines ?? DEFAULT_KEEP_LINES);
  const { leaderExited, exited, status } = watchExit(subprocess, pid, ring, opts, forgetGroup);

  let stopping: Promise<ReplicaExit> | undefined;
  const stop = async (graceMs: number): Promise<ReplicaExit> => {
    if (status() === null) {
      subprocess.stdin.end();
      signalGroup(pid, 'SIGTERM');
      if (!(await raceTimeout(leaderExited, graceMs))) signalGroup(pid, 'SIGKILL');
    }
    return exited;
  };

  return {
    pid,
    pdeathsig: setpriv !== null,
    exited,
    exitStatus: status,
    lastLines: () => ring.snapshot(),
    stop: (graceMs) => (stopping ??= stop(graceMs)),
    kill: (signal) => status() === null && signalGroup(pid, signal),
  };
}

type Subprocess = ReturnType<
  typeof execa<{ buffer: false; stdin: 'pipe'; stdout: 'pipe'; stderr: 'pipe'; reject: false }>
>;

/**
 * Drains the child's output line by line into `ring` and `onLine`, and settles once when its
 * leader exits (then kills what is left of its group); `exited` also waits, briefly, for the
 * output to drain, so the last lines are in the ring.
 */
function watchExit(
  subprocess: Subprocess,
  pid: number,
  ring: LastLines,
  opts: LaunchOptions,
  forgetGroup: () => void,
): { leaderExited: Promise<ReplicaExit>; exited: Promise<ReplicaExit>; status: () => ReplicaExit | null } {
  const onLine = (stream: OutputStream, line: string): void => {
    ring.push(line);
    try {
      opts.onLine?.(stream, line);
    } catch {
      // a failing log sink must not stop the draining of the pipe
    }
  };
  const cut = new TruncationNote(opts.maxLineBytes ?? MAX_CHILD_LINE_BYTES);
  const drained = Promise.all([
    readLines(subprocess.stdout, 'stdout', onLine, cut),
    readLines(subprocess.stderr, 'stderr', onLine, cut),
  ]);
  // Nobody writes to stdin; a worker exiting would otherwise surface EPIPE as an 'error' event.
  subprocess.stdin.on('error', () => undefined);

  let status: ReplicaExit | null = null;
  const leaderExited = new Promise<ReplicaExit>((resolve) => {
    const settle = (exit: ReplicaExit): void => {
      if (status !== null) return;
      status = exit;
      // Anything the worker left behind in its group (forked helpers) dies with it. The group id
      // cannot have been reused yet: it stays allocated while any member is alive.
      signalGroup(pid, 'SIGKILL');
      forgetGroup();
      resolve(exit);
    };
    subprocess.once('exit', (code, signal) => settle({ code, signal }));
    // Fallback if 'exit' is never emitted (spawn error after the pid was assigned).
    subprocess.then(
      (result) => settle({ code: result.exitCode ?? null, signal: result.signal ?? null }),
      () => settle({ code: null, signal: null }),
    );
  });
  const exited = leaderExited.then(async (exit) => {
    await raceTimeout(drained, DRAIN_CAP_MS);
    return exit;
  });

  return { leaderExited, exited, status: () => status };
}

function buildArgv(resolved: string, opts: LaunchOptions, setpriv: string | null): { file: string; argv: string[] } {
  if (opts.groupShim === true) {
    const shim = groupShimArgv(resolved, opts.args, opts.shimGraceMs ?? DEFAULT_SHIM_GRACE_MS);
    // The shim's parent-death signal is TERM so it can fan out to the group with a grace period.
    if (setpriv !== null) return { file: setpriv, argv: ['--pdeathsig', 'SIGTERM', '--', ...shim] };
    const [sh, ...rest] = shim;
    return { file: sh ?? 'sh', argv: rest };
  }
  // setpriv execs the command, so the pid we get is the worker's own.
  if (setpriv !== null) return { file: setpriv, argv: ['--pdeathsig', 'SIGKILL', '--', resolved, ...opts.args] };
  return { file: resolved, argv: [...opts.args] };
}

function readLines(
  stream: Readable,
  name: OutputStream,
  onLine: (stream: OutputStream, line: string) => void,
  cut: TruncationNote,
): Promise<void> {
  return new Promise((resolve) => {
    const splitter = new CappedLineSplitter(cut.maxBytes);
    const emit = (l: { line: string; droppedBytes: number }): void =>
      onLine(name, l.droppedBytes > 0 ? cut.describe(l) : l.line);
    stream.on('error', () => undefined);
    stream.on('data', (chunk: Buffer) => {
      for (const l of splitter.push(chunk)) emit(l);
    });
    stream.once('close', () => {
      const rest = splitter.end();
      if (rest !== null) emit(rest);
      resolve();
    });
  });
}

/** Marks cut lines; the first of a process says why, the others only how much. */
class TruncationNote {
  #said = false;
  constructor(readonly maxBytes: number) {}
  describe(l: { line: string; droppedBytes: number }): string {
    if (this.#said) return `${l.line}… [${l.droppedBytes} more bytes dropped]`;
    this.#said = true;
    return `${l.line}… [${l.droppedBytes} more bytes dropped: output lines of a replica are cut at ${this.maxBytes} bytes; this note is given once]`;
  }
}

/** Sends a signal to a whole process group; false if it no longer exists. */
function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Resolves true if `promise` settles within `ms`, else false; never leaves a timer behind. */
async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function spawnFailed(opts: LaunchOptions, cause: unknown): OmniError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new OmniError('OMNI_SPAWN_FAILED', `cannot start ${opts.command}: ${message}`, {
    cause,
    context: { ...opts.errorContext, phase: 'spawn' },
    hint: 'check the command, its permissions and the working directory of the stage',
  });
}

/** The replica handle the hooks and the pipeline see of a launched process. */
export function replicaHandleOf(launched: LaunchedProcess): ReplicaProcessHandle {
  return {
    pid: launched.pid,
    exited: launched.exited,
    hasExited: () => launched.exitStatus() !== null,
    lastLines: () => launched.lastLines(),
    stop: (graceMs) => launched.stop(graceMs),
  };
}
