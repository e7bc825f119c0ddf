/**
 * Shared/exclusive init locks (locks/init-locks.ts, shared-marks.ts) in a real temp lock dir with
 * real proper-lockfile locks: a shared hold keeps an exclusive acquirer out until it is given up;
 * a window waits for other shared holders and fails closed at its deadline naming the one still
 * loading; a stale mark (its holder stopped refreshing) is removed; a planted non-directory mark
 * is refused; nothing is left after release.
 */
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AcquireDeviceLocksOptions } from '../../src/locks/device-locks.js';
import { acquireInitLocks } from '../../src/locks/init-locks.js';
import { rejection } from '../config/helpers.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

function opts(
  lockDir: string,
  stage: number,
  extra: Partial<AcquireDeviceLocksOptions> = {},
): AcquireDeviceLocksOptions {
  return {
    lockDir,
    devices: ['0'],
    holder: { run_id: 'r', stage_id: stage, replica_id: 0 },
    signal: new AbortController().signal,
    deadline: Date.now() + 20_000,
    ...extra,
  };
}

describe('init locks', { timeout: 60_000 }, () => {
  it('shared holders coexist; an exclusive acquirer waits until they are gone, then the window fails closed naming the holder', async () => {
    const lockDir = await tempDir();
    const a = await acquireInitLocks(opts(lockDir, 1), 'shared');
    const b = await acquireInitLocks(opts(lockDir, 2), 'shared');
    expect(a.shared && b.shared).toBe(true);
    expect((await readdir(lockDir)).filter((n) => n.includes('.shared-') && n.endsWith('.lock'))).toHaveLength(2);

    // An HTTP-style acquirer (alone) cannot get the device while both load.
    const alone = await rejection(acquireInitLocks(opts(lockDir, 3, { deadline: Date.now() + 300 }), 'alone'));
    expect(alone.code).toBe('OMNI_LOCK_TIMEOUT');
    expect(alone.message).toContain('held shared (loading) by pid');
    expect(alone.message).toMatch(/stage [12], replica 0/);

    // a's window waits for b, and fails at its deadline naming b; a gave up its own mark meanwhile.
    const err = await rejection(a.window({ deadline: Date.now() + 300, signal: new AbortController().signal }));
    expect(err.code).toBe('OMNI_LOCK_TIMEOUT');
    expect(err.message).toContain('an exclusive init window on device 0');
    expect(err.message).toContain('stage 2, replica 0');
    await a.release();

    // Once b is back to shared and then gone, a new window is granted and ends shared.
    const c = await acquireInitLocks(opts(lockDir, 4), 'shared');
    await b.release();
    const w = await c.window({ deadline: Date.now() + 5_000, signal: new AbortController().signal });
    expect(c.shared).toBe(false);
    await w.end();
    expect(c.shared).toBe(true);
    await c.release();
    expect(await readdir(lockDir)).toEqual([]);
  });

  it('removes a stale mark (its holder stopped refreshing) and refuses a planted non-directory one', async () => {
    const lockDir = await tempDir();
    const dead = join(lockDir, 'device-0.shared-999-dead.lock');
    await mkdir(dead);
    const old = new Date(Date.now() - 60_000);
    await utimes(dead, old, old);
    const x = await acquireInitLocks(opts(lockDir, 1), 'alone');
    expect(await readdir(lockDir)).not.toContain('device-0.shared-999-dead.lock');
    await x.release();

    await writeFile(join(lockDir, 'device-0.shared-1-planted.lock'), 'x');
    const err = await rejection(acquireInitLocks(opts(lockDir, 1), 'alone'));
    expect(err.code).toBe('OMNI_LOCK_UNSAFE');
    expect(err.message).toContain('device-0.shared-1-planted.lock is not a directory');
    expect(await readdir(lockDir)).toEqual(['device-0.shared-1-planted.lock']);
  });
});
