import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isOmniError, type OmniError } from '../../src/errors.js';
import { acquireDeviceLocks, type AcquireDeviceLocksOptions } from '../../src/locks/device-locks.js';
import { sortDeviceIds as sortIds, uniqueDeviceIds } from '../../src/planning/device-ids.js';
const sortDeviceIds = (ids: readonly string[]): string[] => sortIds(uniqueDeviceIds(ids));
import { readLockHolder } from '../../src/locks/holder.js';
import { LOCK_OPTIONS } from '../../src/locks/options.js';
import { cleanupTempDirs, FIXTURES, killTracked, requireBuilt, sleep, tempDir, trackPid, waitFor } from './helpers.js';
import { AS_OTHER_USER, cannotSwitchUser, copyForOtherUser, OTHER_UID } from './other-user.js';

const owner = { run_id: 'test-run', stage_id: 1, replica_id: 0 };

function opts(
  lockDir: string,
  devices: string[],
  extra: Partial<AcquireDeviceLocksOptions> = {},
): AcquireDeviceLocksOptions {
  return {
    lockDir,
    devices,
    holder: owner,
    signal: new AbortController().signal,
    deadline: Date.now() + 10_000,
    ...extra,
  };
}

/** Runs the lock-holder fixture (as another user through setpriv, when asked) until it holds `devices`. */
async function spawnHolder(
  lockDir: string,
  devices: string,
  stage: number,
  replica: number,
  asOtherUser = false,
): Promise<ChildProcess> {
  const fixtures = asOtherUser ? await otherUserFixtures() : FIXTURES;
  const argv = [process.execPath, join(fixtures, 'lock-holder.mjs'), lockDir, devices, String(stage), String(replica)];
  const [command, ...args] = [...(asOtherUser ? AS_OTHER_USER : []), ...argv] as [string, ...string[]];
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  trackPid(child.pid);
  const rl = createInterface({ input: child.stdout });
  await new Promise<void>((resolve, reject) => {
    rl.on('line', (line) => line === 'locked' && resolve());
    child.once('exit', (code) => reject(new Error(`holder exited early (${code})`)));
  });
  return child;
}

/** The lock fixtures, copied where another user can read them (the clone may be in a private directory). */
async function otherUserFixtures(): Promise<string> {
  const copy = await copyForOtherUser(['test/runtime/fixtures/lock-holder.mjs', 'test/runtime/fixtures/lock-try.mjs']);
  return join(copy, 'test', 'runtime', 'fixtures');
}

/** The outcome the lock-try fixture prints, run as another user. */
async function tryLockAsOtherUser(lockDir: string): Promise<{
  code: string;
  message: string;
  hint: string;
  context: Record<string, unknown>;
}> {
  const argv = [process.execPath, join(await otherUserFixtures(), 'lock-try.mjs'), lockDir, '0', '5000'];
  const [command, ...args] = [...AS_OTHER_USER, ...argv] as [string, ...string[]];
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 });
  expect(r.stdout, r.stderr).not.toBe('');
  return JSON.parse(r.stdout) as { code: string; message: string; hint: string; context: Record<string, unknown> };
}

async function expectReject(promise: Promise<unknown>): Promise<OmniError> {
  try {
    await promise;
  } catch (err) {
    expect(isOmniError(err)).toBe(true);
    return err as OmniError;
  }
  throw new Error('expected a rejection');
}

beforeAll(() => requireBuilt('locks/device-locks.ts', 'locks/holder.ts', 'locks/paths.ts', 'locks/options.ts'));

afterEach(async () => {
  killTracked();
  await cleanupTempDirs();
});

describe('sortDeviceIds', () => {
  it('orders numerically, de-duplicates, and puts non-numeric ids last', () => {
    expect(sortDeviceIds(['10', '2', '0', '2', 'b', 'a', '1'])).toEqual(['0', '1', '2', '10', 'a', 'b']);
  });
});

describe('acquireDeviceLocks', () => {
  it('acquires in ascending numeric order and leaves nothing behind after release', async () => {
    const lockDir = join(await tempDir(), 'nested', 'locks'); // created recursively
    const order: string[] = [];
    const released: string[] = [];
    const t0 = performance.now();
    const set = await acquireDeviceLocks(
      opts(lockDir, ['10', '2', '0', '2'], { onAcquired: (d) => order.push(d), onReleased: (d) => released.push(d) }),
    );
    const acquireMs = performance.now() - t0;
    expect(order).toEqual(['0', '2', '10']);
    expect(set.devices).toEqual(['0', '2', '10']);
    console.log(`[measure] uncontended acquire of 3 device locks: ${acquireMs.toFixed(1)} ms`);

    const entries = (await readdir(lockDir)).sort();
    expect(entries).toEqual([
      'device-0.holder.json',
      'device-0.lock',
      'device-10.holder.json',
      'device-10.lock',
      'device-2.holder.json',
      'device-2.lock',
    ]);
    const holder: unknown = JSON.parse(await readFile(join(lockDir, 'device-2.holder.json'), 'utf8'));
    expect(holder).toMatchObject({ pid: process.pid, run_id: 'test-run', stage_id: 1, replica_id: 0 });
    expect(await readLockHolder(lockDir, '2')).toEqual(holder);

    await set.release();
    await set.release(); // idempotent
    expect(released).toEqual(['10', '2', '0']);
    expect(await readdir(lockDir)).toEqual([]);
    expect(await readLockHolder(lockDir, '2')).toBeNull();
  });

  it('never lets two concurrent acquirers of overlapping device sets hold a device at once', async () => {
    const lockDir = await tempDir();
    const holding = new Map<string, string>();
    const intervals = new Map<string, [number, number, string][]>();
    const violations: string[] = [];

    const worker = async (who: string, devices: string[], rounds: number): Promise<void> => {
      for (let i = 0; i < rounds; i++) {
        const starts = new Map<string, number>();
        const set = await acquireDeviceLocks(
          opts(lockDir, devices, {
            onAcquired: (d) => {
              const other = holding.get(d);
              if (other !== undefined) violations.push(`${who} got ${d} while ${other} held it`);
              holding.set(d, who);
              starts.set(d, performance.now());
            },
            onReleased: (d) => {
              holding.delete(d);
              const list = intervals.get(d) ?? [];
              list.push([starts.get(d) ?? Number.NaN, performance.now(), who]);
              intervals.set(d, list);
            },
          }),
        );
        await sleep(5 + Math.random() * 15);
        await set.release();
      }
    };
    // Overlap on 1 and 2; B lists its devices in descending order to exercise the sort.
    await Promise.all([worker('A', ['0', '1', '2'], 15), worker('B', ['2', '1', '3'], 15), worker('C', ['1'], 15)]);

    expect(violations).toEqual([]);
    for (const [device, list] of intervals) {
      const sorted = [...list].sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < sorted.length; i++) {
        const prev = sorted[i - 1]!;
        const cur = sorted[i]!;
        expect(cur[0], `device ${device}: ${cur[2]} started before ${prev[2]} released`).toBeGreaterThanOrEqual(
          prev[1],
        );
      }
    }
    expect(intervals.get('1')).toHaveLength(45);
    expect(await readdir(lockDir)).toEqual([]);
  });

  it('fails closed at the deadline, naming the device and its holder, and releases what it took', async () => {
    const lockDir = await tempDir();
    const holder = await spawnHolder(lockDir, '5', 7, 3);
    const t0 = Date.now();
    const err = await expectReject(acquireDeviceLocks(opts(lockDir, ['4', '5'], { deadline: Date.now() + 300 })));
    const waited = Date.now() - t0;
    expect(err.code).toBe('OMNI_LOCK_TIMEOUT');
    expect(err.message).toContain('device 5');
    expect(err.message).toContain(`pid ${holder.pid}`);
    expect(err.message).toContain('stage 7');
    expect(err.message).toContain('replica 3');
    expect(err.context).toMatchObject({
      device: '5',
      phase: 'lock',
      stage_id: 1,
      replica_id: 0,
      holder: { pid: holder.pid, stage_id: 7, replica_id: 3 },
    });
    expect(err.hint).toBeTruthy();
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(1_500);
    // device 4 was given back; only the other process's lock remains
    expect((await readdir(lockDir)).sort()).toEqual(['device-5.holder.json', 'device-5.lock']);
  });

  // Needs root (to run the other holder as user nobody) and setpriv, as on this project's CI.
  const switchUser = cannotSwitchUser();
  const canSwitchUser = switchUser === undefined;
  const asOther = canSwitchUser ? '' : ` (skipped: ${switchUser})`;
  it.skipIf(!canSwitchUser)(
    `creates the lock directory for every user of the host: another user locks in it, and we wait on its lock${asOther}`,
    async () => {
      const parent = await tempDir();
      await chmod(parent, 0o755);
      const lockDir = join(parent, 'omnistage-locks');
      const mine = await acquireDeviceLocks(opts(lockDir, ['0']));
      expect((await stat(lockDir)).mode & 0o7777).toBe(0o1777); // world-writable, sticky: others cannot remove ours
      const nobody = await spawnHolder(lockDir, '1', 4, 2, true);
      const err = await expectReject(acquireDeviceLocks(opts(lockDir, ['1'], { deadline: Date.now() + 300 })));
      expect(err.code).toBe('OMNI_LOCK_TIMEOUT');
      expect(err.context).toMatchObject({ device: '1', holder: { pid: nobody.pid, stage_id: 4, replica_id: 2 } });
      expect((await stat(join(lockDir, 'device-1.lock'))).uid).toBe(OTHER_UID);
      await mine.release();
    },
  );

  it.skipIf(!canSwitchUser)(
    `fails closed, naming the holder and what to remove, on another user's stale lock it may not remove${asOther}`,
    async () => {
      const parent = await tempDir();
      await chmod(parent, 0o755);
      const lockDir = join(parent, 'omnistage-locks');
      await (await acquireDeviceLocks(opts(lockDir, ['0']))).release(); // the shared directory, created by root
      const dead = await spawnHolder(lockDir, '0', 6, 1);
      dead.kill('SIGKILL');
      await new Promise((resolve) => dead.once('exit', resolve));
      const past = new Date(Date.now() - 60_000);
      await utimes(join(lockDir, 'device-0.lock'), past, past); // stale: its holder stopped refreshing long ago
      const outcome = await tryLockAsOtherUser(lockDir);
      expect(outcome.code).toBe('OMNI_LOCK_TIMEOUT');
      expect(outcome.message).toMatch(
        new RegExp(
          `^device 0: its init lock was left by pid ${dead.pid} .*stage 6, replica 1.* \\(user id 0\\), and this user may not remove it`,
        ),
      );
      expect(outcome.hint).toContain(join(lockDir, 'device-0.lock'));
      expect(outcome.context).toMatchObject({ device: '0', holder: { pid: dead.pid } });
    },
  );

  describe('objects another local user planted in the shared lock directory', () => {
    /** A lock of someone else that is fresh (not stale), so acquiring has to wait for it. */
    async function busyLock(lockDir: string, device: string): Promise<void> {
      await mkdir(join(lockDir, `device-${device}.lock`));
    }

    it('names a FIFO planted as the holder file at once, instead of hanging on it', async () => {
      const lockDir = await tempDir();
      await busyLock(lockDir, '0');
      const fifo = join(lockDir, 'device-0.holder.json');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      const err = await expectReject(
        acquireDeviceLocks(opts(lockDir, ['0'], { deadline: Date.now() + 60_000, onWaiting: () => undefined })),
      );
      expect(err.code).toBe('OMNI_LOCK_UNSAFE');
      expect(err.message).toContain(`${fifo} is a FIFO, not a file omnistage writes (owner user id 0)`);
      expect(err.hint).toContain(`remove ${fifo}`);
    }, 20_000);

    it('names a holder file that links to /dev/zero at once, without reading it', async () => {
      const lockDir = await tempDir();
      await busyLock(lockDir, '0');
      const link = join(lockDir, 'device-0.holder.json');
      await symlink('/dev/zero', link);
      const before = process.memoryUsage().rss;
      const err = await expectReject(
        acquireDeviceLocks(opts(lockDir, ['0'], { deadline: Date.now() + 60_000, onWaiting: () => undefined })),
      );
      expect(err.code).toBe('OMNI_LOCK_UNSAFE');
      expect(err.message).toContain(`${link} is a symbolic link`);
      expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
      // The diagnostics reader never follows it either.
      expect(await readLockHolder(lockDir, '0')).toBeNull();
    }, 20_000);

    it('names a planted device-N.lock symlink at once, not at the deadline', async () => {
      const lockDir = await tempDir();
      const elsewhere = await tempDir();
      const link = join(lockDir, 'device-0.lock');
      await symlink(elsewhere, link);
      const err = await expectReject(acquireDeviceLocks(opts(lockDir, ['0'], { deadline: Date.now() + 60_000 })));
      expect(err.code).toBe('OMNI_LOCK_UNSAFE');
      expect(err.message).toContain(`${link} is a symbolic link`);
      expect(err.hint).toContain(`remove ${link}`);
    }, 20_000);

    it('refuses a symlinked lock directory', async () => {
      const real = await tempDir();
      const lockDir = join(await tempDir(), 'locks');
      await symlink(real, lockDir);
      const err = await expectReject(acquireDeviceLocks(opts(lockDir, ['0'])));
      expect(err.code).toBe('OMNI_LOCK_UNSAFE');
      expect(err.message).toContain(`the lock directory ${lockDir} is a symbolic link`);
      expect(await readdir(real)).toEqual([]);
    });

    it.skipIf(!canSwitchUser)(
      `refuses an existing lock directory another user owns and only they may write (0755)${asOther}`,
      async () => {
        const lockDir = join(await tempDir(), 'omnistage-locks');
        await mkdir(lockDir, { mode: 0o755 });
        await chown(lockDir, OTHER_UID, OTHER_UID);
        const err = await expectReject(acquireDeviceLocks(opts(lockDir, ['0'])));
        expect(err.code).toBe('OMNI_LOCK_UNSAFE');
        expect(err.message).toContain(`the lock directory ${lockDir} belongs to user id ${OTHER_UID} (mode 0755)`);
        expect(err.hint).toContain('--lock-dir');
        expect(await readdir(lockDir)).toEqual([]);
      },
    );

    it.skipIf(!canSwitchUser)(
      `says EACCES for a lock directory this user cannot write, not "left by an unknown holder"${asOther}`,
      async () => {
        const parent = await tempDir();
        await chmod(parent, 0o755);
        const lockDir = join(parent, 'omnistage-locks');
        await mkdir(lockDir, { mode: 0o755 }); // root's, not world-writable
        const outcome = await tryLockAsOtherUser(lockDir);
        expect(outcome.message).not.toContain('unknown holder');
        expect(outcome.message).toContain(`this user (id ${OTHER_UID}) cannot create locks in ${lockDir} (EACCES)`);
        expect(outcome.code).toBe('OMNI_LOCK_UNSAFE');
      },
    );
  });

  it('stops waiting promptly on abort with OMNI_CANCELLED and releases what it took', async () => {
    const lockDir = await tempDir();
    const blocker = await acquireDeviceLocks(
      opts(lockDir, ['1'], { holder: { run_id: 'other', stage_id: 9, replica_id: 9 } }),
    );
    const controller = new AbortController();
    const acquiredByWaiter: string[] = [];
    const pending = acquireDeviceLocks(
      opts(lockDir, ['0', '1'], { signal: controller.signal, onAcquired: (d) => acquiredByWaiter.push(d) }),
    );
    await sleep(200);
    expect(acquiredByWaiter).toEqual(['0']);
    const t0 = performance.now();
    controller.abort(new Error('test abort'));
    const err = await expectReject(pending);
    const latency = performance.now() - t0;
    expect(err.code).toBe('OMNI_CANCELLED');
    expect(err.context.device).toBe('1');
    expect(latency).toBeLessThan(100);
    expect((await readdir(lockDir)).sort()).toEqual(['device-1.holder.json', 'device-1.lock']);
    await blocker.release();
    expect(await readdir(lockDir)).toEqual([]);
  });

  it('rejects an already aborted signal before touching the disk', async () => {
    const lockDir = join(await tempDir(), 'never');
    const controller = new AbortController();
    controller.abort();
    const err = await expectReject(acquireDeviceLocks(opts(lockDir, ['0'], { signal: controller.signal })));
    expect(err.code).toBe('OMNI_CANCELLED');
  });

  it('fails closed when the lock directory is unusable', async () => {
    const file = join(await tempDir(), 'not-a-dir');
    await writeFile(file, '');
    const err = await expectReject(acquireDeviceLocks(opts(join(file, 'locks'), ['0'])));
    expect(err.code).toBe('OMNI_LOCK_TIMEOUT');
    expect(err.message).toContain('device 0');
    expect(err.hint).toContain('--lock-dir');
  });

  it('refuses device ids that are not safe file names', async () => {
    const lockDir = await tempDir();
    const err = await expectReject(acquireDeviceLocks(opts(lockDir, ['../0'])));
    expect(err.code).toBe('OMNI_INTERNAL');
  });

  it('routes a compromised lock to the callback without crashing, and release() tolerates it', async () => {
    const lockDir = await tempDir();
    const seen: [string, OmniError][] = [];
    const withCallback = await acquireDeviceLocks(
      opts(lockDir, ['0'], {
        onCompromised: (device, err) => {
          seen.push([device, err]);
          throw new Error('a buggy callback must not crash the process');
        },
      }),
    );
    const withoutCallback = await acquireDeviceLocks(opts(lockDir, ['1']));
    // Someone deletes the lock directories under the holders (proper-lockfile's documented
    // compromise case): the next refresh (every LOCK_OPTIONS.update ms) notices.
    await rm(join(lockDir, 'device-0.lock'), { recursive: true });
    await rm(join(lockDir, 'device-1.lock'), { recursive: true });
    expect(await waitFor(() => seen.length > 0, LOCK_OPTIONS.update + 2_000)).toBe(true);
    await sleep(200); // give the second lock's timer the same chance to fire (and not crash)
    const [device, err] = seen[0]!;
    expect(device).toBe('0');
    expect(err.code).toBe('OMNI_LOCK_COMPROMISED');
    expect(err.context).toMatchObject({ device: '0', stage_id: 1, replica_id: 0 });
    await withCallback.release();
    await withoutCallback.release();
    expect(await readdir(lockDir)).toEqual([]);
  }, 10_000);

  it('takes over the lock of a SIGKILLed holder once it is stale, never earlier', async () => {
    const lockDir = await tempDir();
    const holder = await spawnHolder(lockDir, '3', 2, 0);
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const killedAt = Date.now();
    // The dead holder is still reported while its lock is not stale.
    expect((await readLockHolder(lockDir, '3'))?.pid).toBe(holder.pid);
    const set = await acquireDeviceLocks(opts(lockDir, ['3'], { deadline: Date.now() + 20_000 }));
    const waited = Date.now() - killedAt;
    console.log(`[measure] stale takeover after holder SIGKILL: ${waited} ms (stale = ${LOCK_OPTIONS.stale} ms)`);
    // The holder refreshed at most `update` ms before dying, so takeover comes no earlier than
    // stale - update after the kill; proper-lockfile's first mtime is rounded up to the next
    // second, hence up to stale + 1 s (+ polling slack) later.
    expect(waited).toBeGreaterThanOrEqual(LOCK_OPTIONS.stale - LOCK_OPTIONS.update - 100);
    expect(waited).toBeLessThan(LOCK_OPTIONS.stale + 1_500);
    expect((await readLockHolder(lockDir, '3'))?.pid).toBe(process.pid);
    await set.release();
    expect(await readdir(lockDir)).toEqual([]);
  }, 25_000);
});
