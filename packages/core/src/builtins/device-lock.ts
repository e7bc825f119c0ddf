import type { ReplicaRuntime } from '../hooks/contexts.js';
import type { HeldDeviceLocks } from '../hooks/hooks.js';
import { acquireInitLocks } from '../locks/init-locks.js';
import { describeHolder } from '../locks/holder.js';

/**
 * Core's `lockDevices` tap: the replica's init locks in ascending order, within its deadline and
 * signal (the wait names the device and its holder); a lock lost during init fails the replica.
 * Taken exclusive; a replica that declares init phases in its hello turns it shared (init-windows.ts).
 */
export async function lockDevicesBuiltin(rt: ReplicaRuntime): Promise<HeldDeviceLocks> {
  const { stage_id, replica_id } = rt.replica;
  let initializing = true;
  const set = await acquireInitLocks(
    {
      lockDir: rt.lockDir,
      devices: rt.replica.lock_devices,
      holder: { run_id: rt.runId, stage_id, replica_id },
      signal: rt.signal,
      deadline: rt.deadline,
      onAcquired: (device) => rt.events.emit({ type: 'lock:acquired', device, stage_id, replica_id, pid: process.pid }),
      onReleased: (device) => rt.events.emit({ type: 'lock:released', device, stage_id, replica_id, pid: process.pid }),
      onWaiting: (device, holder) => {
        rt.events.emit({
          type: 'lock:waiting',
          device,
          stage_id,
          replica_id,
          holder: holder === null ? null : { ...holder },
        });
        rt.logger.info({ device, holder }, `waiting for device ${device}, locked by ${describeHolder(holder)}`);
      },
      onCompromised: (device, err) => {
        // Only during init does the lock protect anything; a loss then fails this replica.
        if (initializing || !rt.signal.aborted) {
          err.context.stage_id = stage_id;
          err.context.replica_id = replica_id;
          err.context.device = device;
          rt.fail(err);
        }
      },
    },
    // A control-protocol worker says at hello whether it follows phases; anything else loads alone.
    rt.replica.worker.attach !== 'control' ? 'alone' : rt.replica.worker.phases === true ? 'shared' : 'gate',
  );
  initializing = false;
  return set;
}
