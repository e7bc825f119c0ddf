import { readFileSync } from 'node:fs';

/**
 * Whether a process is stopped (SIGSTOP, SIGTSTP, a tracer): state `T` or `t` in
 * `/proc/<pid>/stat`. A stopped process answers nothing and handles no signal but SIGKILL, so
 * waiting for it is pointless. False where /proc cannot tell (another OS, the process is gone).
 */
export function isProcessStopped(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false;
  }
  // The command name (field 2) is in parentheses and may itself contain ") ": the state follows the last one.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'T' || state === 't';
}
