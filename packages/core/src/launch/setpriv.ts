import { spawnSync } from 'node:child_process';
import { resolveCommand } from './resolve-command.js';

let cached: string | null | undefined;

/**
 * Absolute path of util-linux `setpriv` when it supports `--pdeathsig` (Linux), else null.
 * Detected once per process (one ~2 ms `setpriv --help`) and cached: the answer cannot change
 * while we run. Absent on macOS and busybox-only systems, where workers rely on stdin EOF and
 * the control connection closing instead.
 */
export function setprivPath(): string | null {
  if (cached === undefined) cached = detect();
  return cached;
}

function detect(): string | null {
  if (process.platform !== 'linux') return null;
  const path = resolveCommand('setpriv', process.env, process.cwd());
  if (path === null) return null;
  const probe = spawnSync(path, ['--help'], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (probe.error !== undefined) return null;
  return `${probe.stdout}${probe.stderr}`.includes('--pdeathsig') ? path : null;
}
