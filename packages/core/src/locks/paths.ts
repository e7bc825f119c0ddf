import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OmniError } from '../errors.js';

/** Env var that overrides the host-wide lock directory (also `--lock-dir` on the CLI). */
export const LOCK_DIR_ENV = 'OMNISTAGE_LOCK_DIR';

/**
 * The lock directory shared by every omnistage on the host: `$OMNISTAGE_LOCK_DIR`, else
 * `<os tmpdir>/omnistage-locks`. Takes the env explicitly so callers never read a mutated global.
 */
export function defaultLockDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const fromEnv = env[LOCK_DIR_ENV];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(tmpdir(), 'omnistage-locks');
}

// Device ids end up in file names: refuse anything that could escape the lock directory.
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Throws OMNI_INTERNAL when a device id is not usable as part of a file name. */
export function assertDeviceId(device: string): void {
  if (!DEVICE_ID.test(device)) {
    throw new OmniError('OMNI_INTERNAL', `device id ${JSON.stringify(device)} is not a valid lock name`, {
      context: { device },
      hint: 'physical device ids must be short alphanumeric strings (e.g. "0", "3"); this is a planning bug',
    });
  }
}

/** The (never created) file whose `.lock` directory is the lock of `device`. */
export function deviceLockTarget(lockDir: string, device: string): string {
  assertDeviceId(device);
  return join(lockDir, `device-${device}`);
}

/** The directory proper-lockfile creates while `device` is held. */
export function deviceLockDir(lockDir: string, device: string): string {
  return `${deviceLockTarget(lockDir, device)}.lock`;
}

/** The sidecar JSON that names the current holder of `device`. */
export function holderFilePath(lockDir: string, device: string): string {
  return `${deviceLockTarget(lockDir, device)}.holder.json`;
}

/**
 * The (never created) file whose `.lock` directory marks one shared holder of `device` (a replica
 * loading while others may load too). `token` is unique per holding; see shared-marks.ts.
 */
export function sharedMarkTarget(lockDir: string, device: string, token: string): string {
  return `${deviceLockTarget(lockDir, device)}.shared-${token}`;
}

/** The name every shared mark of `device` starts with (device ids hold no '.', so `1` never matches `10`). */
export function sharedMarkPrefix(device: string): string {
  assertDeviceId(device);
  return `device-${device}.shared-`;
}
