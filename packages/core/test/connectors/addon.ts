/**
 * The native addon (native/shm_map.c) is optional: without it (no C compiler at build time, or
 * OMNISTAGE_NO_NATIVE=1) payload reads copy and producers have no pool. Tests of what only the
 * addon does skip then, and say why in their title.
 */
import { NO_NATIVE_ENV, shmNative } from '../../src/connectors/shm-native.js';

/** Why the addon is not loaded in this test run (undefined: it is). */
export const addonMissing: string | undefined =
  shmNative() !== undefined
    ? undefined
    : process.env[NO_NATIVE_ENV] === '1'
      ? `${NO_NATIVE_ENV}=1`
      : 'the native addon was not built (no C compiler or Node-API headers at build time)';

/** The title of a test that needs the addon, saying why it is skipped where it is missing. */
export function needsAddon(title: string): string {
  return addonMissing === undefined ? title : `${title} (skipped: ${addonMissing})`;
}
