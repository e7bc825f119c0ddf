import type { OmniHooks } from '../hooks/hooks.js';
import { BUILTIN_TAP_PREFIX } from '../hooks/plugin-errors.js';
import { STAGE_BUILTIN } from '../hooks/stages.js';
import { attachBuiltin } from './attach.js';
import { lockDevicesBuiltin } from './device-lock.js';
import { spawnBuiltin } from './spawn.js';

/**
 * Taps core's own lock, spawn and attach at {@link STAGE_BUILTIN}, after every plugin: a plugin
 * tap that answers first replaces them and still runs under the driver's supervision.
 */
export function registerBuiltinTaps(hooks: OmniHooks): void {
  const at = (name: string) => ({ name: `${BUILTIN_TAP_PREFIX}${name}`, stage: STAGE_BUILTIN });
  hooks.lockDevices.tapPromise(at('lock'), lockDevicesBuiltin);
  hooks.spawn.tapPromise(at('spawn'), spawnBuiltin);
  hooks.attach.tapPromise(at('attach'), attachBuiltin);
}
