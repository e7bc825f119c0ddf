import type { HeldDeviceLocks } from '../hooks/hooks.js';
import { acquireDeviceLocks, type AcquireDeviceLocksOptions, type DeviceLockSet } from './device-locks.js';
import { drainSharedMarks, takeSharedMarks, type SharedMarks } from './shared-marks.js';

/** An exclusive window inside a shared hold; `end` returns to the shared hold. */
export interface InitWindow {
  end(): Promise<void>;
}

/**
 * A replica's init locks with phases (docs/protocol.md, "Init phases"). Taken exclusive: the
 * device gates (proper-lockfile, ascending) plus no live shared mark of anyone else, so an engine
 * that does not follow phases has its devices alone for its whole init, as before. A replica that
 * declares phases then {@link share}s: it takes a shared mark per device and gives the gates back,
 * so co-located replicas load concurrently; around the part that must be alone (profiling) it asks
 * for a {@link window}. Every wait fails closed at the replica's deadline, naming the holder.
 */
export interface PhasedDeviceLocks extends HeldDeviceLocks {
  /**
   * Waits until no other replica holds the devices shared (a replica that did not declare phases
   * must have them alone before it starts loading). No-op once done, or when shared.
   */
  alone(bounds: Pick<AcquireDeviceLocksOptions, 'deadline' | 'signal'>): Promise<void>;
  /** Turns the whole-init exclusive hold into a shared one. No-op when already shared. */
  share(): Promise<void>;
  /**
   * Waits for the devices alone: gives up its own marks (two replicas waiting for windows must not
   * wait on each other's marks), takes the gates in ascending order, waits until every other shared
   * holder is gone. `deadline`/`signal` bound the wait. Resolves at once when not shared.
   */
  window(bounds: Pick<AcquireDeviceLocksOptions, 'deadline' | 'signal' | 'onWaiting'>): Promise<InitWindow>;
}

/** True for lock sets that can hold devices shared (core's; a plugin's lock tap may return plainer ones). */
export function isPhased(locks: HeldDeviceLocks | undefined): locks is PhasedDeviceLocks {
  return typeof (locks as Partial<PhasedDeviceLocks> | undefined)?.share === 'function';
}

/**
 * Takes the gates of `opts.devices`, so nobody starts loading on them; with `alone`, also waits
 * until no shared holder is left (an HTTP engine, which never says whether it follows phases).
 * Without it the caller decides at the replica's hello: {@link PhasedDeviceLocks.share} or
 * {@link PhasedDeviceLocks.alone}.
 */
export async function acquireInitLocks(opts: AcquireDeviceLocksOptions, alone: boolean): Promise<PhasedDeviceLocks> {
  // With `alone`, lock:acquired means "alone on the device": told after the shared holders are gone.
  let gates: DeviceLockSet | null = await acquireDeviceLocks(alone ? { ...opts, onAcquired: undefined } : opts);
  const devices = gates.devices;
  let drained = false;
  const drain = async (bounds: Pick<AcquireDeviceLocksOptions, 'deadline' | 'signal'>): Promise<void> => {
    if (drained || gates === null) return;
    await drainSharedMarks({ ...opts, ...bounds }, devices, null, 'the device alone');
    drained = true;
  };
  if (alone) {
    try {
      await drain(opts);
    } catch (err) {
      await gates.release().catch(() => undefined);
      throw err;
    }
    for (const device of devices) opts.onAcquired?.(device);
  }
  let marks: SharedMarks | null = null;
  // Window gates are not the init lock: no lock:acquired/released events for them.
  const quiet = { ...opts, onAcquired: undefined, onReleased: undefined, onWaiting: undefined };
  let released = false;
  const toShared = async (): Promise<void> => {
    if (gates === null || released) return;
    marks = await takeSharedMarks(opts, devices);
    const held = gates;
    gates = null;
    await held.release();
  };
  return {
    devices,
    alone: drain,
    share: toShared,
    async window(bounds) {
      if (marks === null || released) return { end: async () => undefined };
      const own = marks;
      marks = null;
      await own.release();
      const o = { ...quiet, ...bounds };
      gates = await acquireDeviceLocks(o);
      await drainSharedMarks(o, devices, null, 'an exclusive init window');
      return { end: toShared };
    },
    async release() {
      released = true;
      const [m, g] = [marks, gates];
      marks = null;
      gates = null;
      await m?.release();
      await g?.release();
    },
  };
}
