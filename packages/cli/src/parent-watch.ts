import { readFileSync } from 'node:fs';

/** How often the parent chain is checked: a drain starts at most this long after the parent died. */
export const PARENT_POLL_MS = 250;

/** One link of the chain that must hold: `pid`'s parent is `ppid`. */
interface Link {
  pid: number;
  ppid: number;
}

function parentOf(pid: number): number | null {
  try {
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

function argvOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** `sh -c CMD` (or bash/dash): the shell npm runs a bin through. */
function isCommandShell(argv: readonly string[]): boolean {
  return /(^|\/)(sh|bash|dash)$/.test(argv[0] ?? '') && argv[1] === '-c';
}

/**
 * The links whose breaking means "whoever started us is gone": our own parent and, when that is
 * the `sh -c` npm/npx runs a bin through, the shell's parent too — killing npm with SIGKILL leaves
 * the shell alive (re-parented), so watching the shell alone would miss it.
 */
function chainToWatch(): Link[] {
  const links: Link[] = [{ pid: process.pid, ppid: process.ppid }];
  const shell = process.ppid;
  const above = parentOf(shell);
  if (above !== null && above > 1 && isCommandShell(argvOf(shell)) && (argvOf(above)[0] ?? '').startsWith('npm')) {
    links.push({ pid: shell, ppid: above });
  }
  return links;
}

/**
 * The CLI's own parent-death guarantee (Node has no `prctl(PR_SET_PDEATHSIG)`): calls `onGone`
 * once when the process that started it, or the npm/npx wrapper around it, has died and it was
 * re-parented. A supervisor that was SIGKILLed, or an `npx` whose shell died of a SIGTERM npm
 * forwarded, would otherwise leave the CLI serving with no one to stop it. Not armed when started
 * by pid 1 (nothing can re-parent it) or outside Linux. Returns the function that stops watching.
 */
export function watchParent(onGone: () => void, intervalMs = PARENT_POLL_MS): () => void {
  if (process.platform !== 'linux' || process.ppid <= 1) return () => {};
  const links = chainToWatch();
  const timer = setInterval(() => {
    const broken = links.some((l) => (l.pid === process.pid ? process.ppid : parentOf(l.pid)) !== l.ppid);
    if (!broken) return;
    clearInterval(timer);
    onGone();
  }, intervalMs);
  // Watching must never be what keeps the CLI alive.
  timer.unref();
  return () => clearInterval(timer);
}
