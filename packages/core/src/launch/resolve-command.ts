import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/**
 * Finds the executable `command` would run with the child's PATH, or null. Checked before
 * spawning because behind `setpriv` a missing command is not a spawn error (setpriv exits 127),
 * and a clear OMNI_SPAWN_FAILED is worth the few `access()` calls.
 */
export function resolveCommand(
  command: string,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): string | null {
  if (command.includes('/')) {
    const path = isAbsolute(command) ? command : resolve(cwd, command);
    return isExecutableFile(path) ? path : null;
  }
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const path = join(isAbsolute(dir) ? dir : resolve(cwd, dir), command);
    if (isExecutableFile(path)) return path;
  }
  return null;
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
