/**
 * The process-group shim (design/libraries.md §5): a POSIX `sh` that leads the replica's
 * process group, runs the real command in the background and, when it receives SIGTERM
 * (from `setpriv --pdeathsig SIGTERM` when the orchestrator dies, or from a graceful stop),
 * TERMs the whole group, gives the command `grace` tenths of a second, then KILLs the group
 * (itself included). This reaches grandchildren, which a parent-death signal does not (it is
 * not inherited across fork).
 *
 * Details that matter:
 * - `exec 3<&0` / `<&3`: sh gives background commands /dev/null as stdin when job control is
 *   off; re-attaching the original stdin keeps the worker's stdin-EOF fallback working.
 * - `wait` returns early (status > 128) when a trapped signal arrives, so the loop waits again
 *   until the command is really gone.
 * - The command's exit code is the shim's exit code; if the command died from a common signal
 *   the shim re-raises it on itself so the launcher reports that signal.
 */
const SHIM_SCRIPT = [
  'grace=$1; shift',
  'child=',
  'trap \'trap "" TERM; kill -TERM 0 2>/dev/null; i=0; ' +
    'while [ -n "$child" ] && kill -0 "$child" 2>/dev/null && [ "$i" -lt "$grace" ]; do sleep 0.1; i=$((i+1)); done; ' +
    "kill -KILL 0' TERM",
  'exec 3<&0',
  '"$@" <&3 3<&- &',
  'child=$!',
  'exec 3<&-',
  'while :; do',
  '  wait "$child"; rc=$?',
  '  kill -0 "$child" 2>/dev/null || break',
  'done',
  'case $rc in',
  '  129|130|131|134|137|139|143) trap - TERM; kill -$((rc - 128)) $$ ;;',
  'esac',
  'exit $rc',
].join('\n');

/** argv (after `setpriv --pdeathsig SIGTERM --`) that runs `command args` under the group shim. */
export function groupShimArgv(command: string, args: readonly string[], graceMs: number): string[] {
  const tenths = Math.max(1, Math.ceil(graceMs / 100));
  // `omnistage-shim` becomes $0 (shows in ps); the command and its args are passed as positional
  // parameters, never interpolated into the script, so no quoting issues.
  return ['sh', '-c', SHIM_SCRIPT, 'omnistage-shim', String(tenths), command, ...args];
}
