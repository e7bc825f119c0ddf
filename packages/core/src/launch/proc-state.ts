import { readFileSync } from 'node:fs';

/**
 * A process's state letter from `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`, ...), or null where /proc
 * cannot tell (another OS, the process is gone).
 */
export function processState(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may itself contain ") ": the state follows the last one.
  const close = stat.lastIndexOf(')');
  return stat.slice(close + 2, close + 3);
}

/**
 * Whether a process is stopped (SIGSTOP, SIGTSTP, a tracer): state `T` or `t`. A stopped process
 * answers nothing and handles no signal but SIGKILL, so waiting for it is pointless. False where
 * /proc cannot tell.
 */
export function isProcessStopped(pid: number): boolean {
  const state = processState(pid);
  return state === 'T' || state === 't';
}
