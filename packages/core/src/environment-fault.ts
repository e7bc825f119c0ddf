/**
 * System errors that say the host, not omnistage, is at fault: a full disk, no file descriptors
 * left, a permission. They become `OMNI_ENVIRONMENT` naming the resource and the fix, instead of
 * `OMNI_INTERNAL` ("a bug in omnistage"), which sent users to report bugs about their `ulimit`.
 */

/** What the host ran out of or refused, and how to fix it, per errno. */
const FIXES: Record<string, { what: string; fix: (where: string) => string }> = {
  ENOSPC: { what: 'no space left on the device', fix: (w) => `free space on the filesystem of ${w} (df -h)` },
  EDQUOT: { what: 'the disk quota is used up', fix: (w) => `free space under ${w} or raise the quota` },
  EMFILE: {
    what: 'too many open files in this process',
    fix: () => 'raise the open-files limit (ulimit -n, or LimitNOFILE= for a service) or send fewer requests at once',
  },
  ENFILE: {
    what: 'too many open files on the host',
    fix: () => 'raise fs.file-max, or stop programs that hold many files',
  },
  EACCES: { what: 'permission denied', fix: (w) => `give this user access to ${w} (ls -ld), or use another directory` },
  EPERM: { what: 'operation not permitted', fix: (w) => `give this user access to ${w}, or use another directory` },
  EROFS: { what: 'the filesystem is read-only', fix: (w) => `use a writable directory instead of ${w}` },
  ENOMEM: { what: 'out of memory', fix: () => 'free memory on the host or run fewer replicas' },
};

/** The parts of an `OMNI_ENVIRONMENT` error for `err`, or null when `err` is not an environment fault. */
export function environmentFault(
  err: unknown,
): { message: string; hint: string; context: { errno: string; path?: string; syscall?: string } } | null {
  if (!(err instanceof Error)) return null;
  const { code, path, syscall } = err as NodeJS.ErrnoException;
  const known = typeof code === 'string' ? FIXES[code] : undefined;
  if (!known || code === undefined) return null;
  const where = path ?? 'the path it names';
  const on = path === undefined ? '' : ` (${syscall === undefined ? '' : `${syscall} `}${path})`;
  return {
    message: `${known.what}${on}: ${err.message}`,
    hint: `${known.fix(where)}.`,
    context: { errno: code, ...(path === undefined ? {} : { path }), ...(syscall === undefined ? {} : { syscall }) },
  };
}
