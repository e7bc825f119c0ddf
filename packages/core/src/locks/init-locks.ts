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
  /** True while the devices are held shared (not in a window). */
  readonly shared: boolean;
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
 * How a replica's init starts: `alone` (gates taken and no shared holder left: an HTTP engine,
 * which never says whether it follows phases), `gate` (gates only: nobody starts loading; the
 * replica's hello decides between {@link PhasedDeviceLocks.share} and
 * {@link PhasedDeviceLocks.alone}), `shared` (a worker expected to declare phases).
 */
export type InitLockMode = 'alone' | 'gate' | 'shared';

/** Takes `opts.devices` for one replica's init in `mode`. lock:acquired/released tell exclusive holds. */
export async function acquireInitLocks(
  opts: AcquireDeviceLocksOptions,
  mode: InitLockMode,
): Promise<PhasedDeviceLocks> {
  // Window gates and the brief gates of a shared start are not the init lock: no lock events.
  const quiet = { ...opts, onAcquired: undefined, onReleased: undefined };
  // With `alone`, lock:acquired means "alone on the device": told after the shared holders are gone.
  let gates: DeviceLockSet | null = await acquireDeviceLocks(
    mode === 'gate' ? opts : mode === 'alone' ? { ...opts, onAcquired: undefined } : quiet,
  );
  const devices = gates.devices;
  let drained = false;
  // `gate` told lock:acquired with the gates; the others tell it once they have the devices alone.
  let announced = mode === 'gate';
  let marks: SharedMarks | null = null;
  const drain = async (bounds: Pick<AcquireDeviceLocksOptions, 'deadline' | 'signal'>): Promise<void> => {
    if (drained || released) return;
    if (gates === null) {
      // Started shared, but the hello did not declare phases: give the marks back and take the gates.
      const own = marks;
      marks = null;
      await own?.release();
      gates = await acquireDeviceLocks({ ...opts, ...bounds, onAcquired: undefined });
    }
    await drainSharedMarks({ ...opts, ...bounds }, devices, null, 'the device alone');
    drained = true;
    if (!announced) for (const device of devices) opts.onAcquired?.(device);
    announced = true;
  };
  let released = false;
  const toShared = async (): Promise<void> => {
    if (gates === null || released) return;
    marks = await takeSharedMarks(opts, devices);
    const held = gates;
    gates = null;
    await held.release();
  };
  try {
    if (mode === 'alone') await drain(opts);
    if (mode === 'shared') {
      const held = gates;
      gates = null;
      marks = await takeSharedMarks(opts, devices).finally(() => held.release());
    }
  } catch (err) {
    await gates?.release().catch(() => undefined);
    throw err;
  }
  return {
    devices,
    get shared() {
      return marks !== null;
    },
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
