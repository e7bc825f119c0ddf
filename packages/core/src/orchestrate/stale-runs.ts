/**
 * Leftovers of orchestrators that died without a teardown (SIGKILL, the OOM killer, a container
 * stopped hard). Their replicas die with them (parent-death signal) and their device locks go
 * stale on their own, but their run directory (the control socket) and the payload files they had
 * in flight in /dev/shm would stay until reboot: tmpfs memory that nobody frees. So every run
 * records its owner in its run directory, and each bring-up first removes what is left of runs
 * whose owner is gone.
 *
 * A pid means something only in its pid namespace (docs/deviations.md: lock staleness is never
 * judged by pid). So an owner is judged dead only when it recorded the same pid namespace as the
 * reaper and its pid is gone or now belongs to a process that started at another time, or when it
 * recorded another boot. An owner from another namespace (a container sharing the temp dir) is
 * never touched.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { lstat, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sweepRunPayloads } from '../connectors/shm-store.js';

/** Run directories are `<tmpdir>/omnistage-run-XXXXXX`. */
export const RUN_DIR_PREFIX = 'omnistage-run-';
const OWNER_FILE = 'owner.json';

/** Who owns a run directory, and where its payload files live. */
export interface RunOwner {
  run_id: string;
  pid: number;
  /** The owner's start time (clock ticks since boot, Linux), so a recycled pid is not taken for it. */
  start_ticks: number | null;
  /** The owner's pid namespace (`pid:[4026531836]`, Linux): its pid is only compared within it. */
  pid_ns: string | null;
  /** The kernel boot the owner ran in (`/proc/sys/kernel/random/boot_id`). */
  boot_id: string | null;
  payload_dir: string;
}

/** What {@link reapStaleRuns} removed of one dead run. */
export interface ReapedRun {
  /** Null for a directory whose orchestrator was killed before it wrote a readable owner record. */
  run_id: string | null;
  pid: number | null;
  run_dir: string;
  /** Payload files of the run that were still there. */
  payload_files: number;
}

/** Start time of a process in clock ticks since boot (`/proc/<pid>/stat` field 22), or null where unknown. */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isSafeInteger(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

/** This process's pid namespace and boot, where the OS says (Linux); nulls elsewhere. */
export function processIdentity(): { pid_ns: string | null; boot_id: string | null } {
  let pid_ns: string | null = null;
  let boot_id: string | null = null;
  try {
    pid_ns = readlinkSync('/proc/self/ns/pid');
  } catch {
    // not Linux, or /proc not mounted
  }
  try {
    boot_id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    // idem
  }
  return { pid_ns, boot_id };
}

/** Records this process as the owner of a run directory. */
export async function writeRunOwner(runDir: string, owner: Pick<RunOwner, 'run_id' | 'payload_dir'>): Promise<void> {
  const record: RunOwner = {
    ...owner,
    pid: process.pid,
    start_ticks: processStartTicks(process.pid),
    ...processIdentity(),
  };
  // Written aside and renamed into place: an orchestrator killed mid-write leaves a temp file (its
  // directory is then ownerless, reaped after the grace), never a cut record under the real name.
  const temp = join(runDir, `${OWNER_FILE}.${process.pid}.tmp`);
  await writeFile(temp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  await rename(temp, join(runDir, OWNER_FILE));
}

/**
 * False only when the process that wrote `owner` is certainly gone: it ran in an earlier boot, or
 * in this pid namespace and its pid is free or now another process's. Unknown counts as alive.
 */
export function ownerAlive(owner: RunOwner, self = processIdentity()): boolean {
  if (owner.boot_id !== null && self.boot_id !== null && owner.boot_id !== self.boot_id) return false;
  if (owner.pid_ns === null || owner.pid_ns !== self.pid_ns) return true;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: a process of another user has the pid, so it is not ours any more.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH' || (err as NodeJS.ErrnoException).code === 'EPERM')
      return false;
  }
  if (owner.start_ticks === null) return true;
  const now = processStartTicks(owner.pid);
  return now === null || now === owner.start_ticks;
}

function parseOwner(text: string): RunOwner | null {
  try {
    const o = JSON.parse(text) as Partial<RunOwner>;
    const ok =
      typeof o.run_id === 'string' &&
      Number.isSafeInteger(o.pid) &&
      (o.pid as number) > 0 &&
      (o.start_ticks === null || Number.isSafeInteger(o.start_ticks)) &&
      (o.pid_ns === null || typeof o.pid_ns === 'string') &&
      (o.boot_id === null || typeof o.boot_id === 'string') &&
      typeof o.payload_dir === 'string';
    return ok ? (o as RunOwner) : null;
  } catch {
    return null;
  }
}

/**
 * A directory without an owner record is being created right now, or its orchestrator was killed
 * between `mkdtemp` and writing the record. Creation takes milliseconds, so one older than this
 * whose control socket (if any) nobody listens on is a leftover.
 */
export const OWNERLESS_GRACE_MS = 60_000;

/**
 * Removes the run directories in `tmpDir` (default the OS temp dir) whose owner is gone, and the
 * payload files of those runs. Only this user's directories are touched: those with a readable
 * owner record whose owner is dead, and those without a record (or with one that does not parse)
 * that are older than {@link OWNERLESS_GRACE_MS} with no live control socket (such a run never got
 * to create payload files). Never throws: a leftover that cannot be removed is left for the next run.
 */
export async function reapStaleRuns(
  options: { tmpDir?: string; except?: string; ownerlessGraceMs?: number } = {},
): Promise<ReapedRun[]> {
  const dir = options.tmpDir ?? tmpdir();
  const uid = process.getuid?.();
  const self = processIdentity();
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.startsWith(RUN_DIR_PREFIX));
  } catch {
    return [];
  }
  const reaped: ReapedRun[] = [];
  for (const name of names) {
    const runDir = join(dir, name);
    if (runDir === options.except) continue;
    try {
      const st = await lstat(runDir);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      const text = await readFile(join(runDir, OWNER_FILE), 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      // A record that does not parse (cut short by a kill mid-write, by an older omnistage that
      // wrote it in place) tells no more than a missing one: the same grace and socket check apply.
      const owner = text === null ? null : parseOwner(text);
      if (owner === null) {
        if (await ownerlessLeftover(runDir, st.mtimeMs, options.ownerlessGraceMs ?? OWNERLESS_GRACE_MS)) {
          await rm(runDir, { recursive: true, force: true });
          reaped.push({ run_id: null, pid: null, run_dir: runDir, payload_files: 0 });
        }
        continue;
      }
      if (ownerAlive(owner, self)) continue;
      const files = sweepRunPayloads(owner.run_id, owner.payload_dir);
      await rm(runDir, { recursive: true, force: true });
      reaped.push({ run_id: owner.run_id, pid: owner.pid, run_dir: runDir, payload_files: files });
    } catch {
      // gone meanwhile (another orchestrator reaped it), no owner record, or not ours
    }
  }
  return reaped;
}

/** True for an ownerless run directory that is old and whose control socket nobody listens on. */
async function ownerlessLeftover(runDir: string, mtimeMs: number, graceMs: number): Promise<boolean> {
  if (Date.now() - mtimeMs < graceMs) return false;
  const socket = join(runDir, 'control.sock');
  const isSocket = await lstat(socket).then(
    (st) => st.isSocket(),
    () => false,
  );
  if (!isSocket) return true;
  return !(await new Promise<boolean>((resolve) => {
    const probe = createConnection(socket);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  }));
}
