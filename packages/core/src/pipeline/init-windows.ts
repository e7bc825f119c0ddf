import { OmniError, toOmniError } from '../errors.js';
import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { ReplicaChannel } from '../control/replica-channel.js';
import type { InitWindow, PhasedDeviceLocks } from '../locks/init-locks.js';
import { replicaLabel } from '../error-messages.js';

/**
 * Serves a replica's init locks over its channel (docs/protocol.md "Init phases"). Before its
 * welcome: without phases in its hello it waits to have its devices alone (whole-init exclusive);
 * with them its hold becomes shared (`onShared`: the next co-located replica may start),
 * and each `window_request` is granted when it has the devices alone, one window at a time, within
 * its deadline. A wait that fails, or a protocol breach, fails the replica (`rt.fail`); the locks
 * themselves are released by the driver when the start ends, after the returned stop (which
 * cancels a wait still pending and lets the step in progress finish).
 */
export function serveInitWindows(
  channel: ReplicaChannel,
  locks: PhasedDeviceLocks,
  rt: ReplicaRuntime,
  onShared: () => void,
): () => Promise<void> {
  const stopped = new AbortController();
  const signal = AbortSignal.any([rt.signal, stopped.signal]);
  const { stage_id, replica_id } = rt.replica;
  const devices = [...locks.devices];
  const on = `device${devices.length === 1 ? '' : 's'} ${devices.join(', ')}`;
  // Messages are handled in order: a window_end never overtakes its window's grant.
  let chain: Promise<void> = Promise.resolve();
  let open: { id: number; window: InitWindow | null } | null = null;
  let phased = false;
  const step = (fn: () => Promise<void>): void => {
    chain = chain.then(fn).catch((err: unknown) => rt.fail(toOmniError(err)));
  };
  const breach = (message: string): never => {
    throw new OmniError('OMNI_PROTOCOL', `${replicaLabel(rt.replica)}: ${message}`, {
      context: { stage_id, replica_id, phase: 'attach' },
      hint: 'declare phases in hello, then call exclusive() once at a time, during init (docs/protocol.md "Init phases")',
    });
  };
  const emit = (window: number, state: 'waiting' | 'start' | 'end'): void =>
    rt.events.emit({ type: 'replica:window', stage_id, replica_id, window, devices, state });

  // Before the welcome: a phase-aware replica holds its devices shared, any other waits to be alone.
  channel.admitWith(async (hello) => {
    if (!channel.phasesGranted(hello)) return locks.alone({ deadline: rt.deadline, signal });
    phased = true;
    await locks.share();
    onShared();
  });

  const unsubscribe = channel.onMessage((m) => {
    if (m.type === 'window_request') {
      step(async () => {
        if (!phased) breach(`asked for init window ${m.window} without declaring phases in its hello`);
        if (open !== null)
          breach(`asked for init window ${m.window} while window ${open.id} is open (one window at a time)`);
        open = { id: m.window, window: null };
        emit(m.window, 'waiting');
        rt.progress('window', `waiting for init window ${m.window}: ${on} alone`);
        open.window = await locks.window({ deadline: rt.deadline, signal });
        emit(m.window, 'start');
        rt.progress('window', `in its exclusive init window ${m.window} on ${on}`);
        channel.send({ type: 'window_granted', window: m.window });
      });
    } else if (m.type === 'window_end') {
      step(async () => {
        if (open?.window == null || open.id !== m.window) breach(`ended init window ${m.window}, which is not open`);
        // Told before the devices are shared again, so windows' [start, end] never overlap.
        emit(m.window, 'end');
        await open!.window!.end();
        open = null;
        rt.progress('ready');
      });
    }
  });
  return async () => {
    unsubscribe();
    stopped.abort();
    await chain;
  };
}
