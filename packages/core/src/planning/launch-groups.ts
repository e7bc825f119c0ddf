import { sortDeviceIds, uniqueDeviceIds } from './device-ids.js';
import type { LaunchGroup, ReplicaPlan } from './types.js';

/** What {@link launchGroups} needs of a replica. */
export type LaunchGroupMember = Pick<ReplicaPlan, 'stage_id' | 'replica_id' | 'lock_devices'> & {
  /** Physical devices; null or empty = inherits (and so may use) every visible device. */
  physical_devices: readonly string[] | null;
};

/**
 * Launch groups: connected components of the "shares a physical device" graph. Groups start
 * concurrently; members of one group start one after another, in plan order.
 *
 * Deviation (upstream #4653): upstream grouped by the raw `devices` string, so `"0,1,2,3"` and `"3"`
 * were independent groups racing for the device-3 lock; here they are one group. A replica without
 * devices shares every visible device and joins every group it touches.
 *
 * Group ids are `0..` in order of each group's first member; members keep the order of `replicas`;
 * a group's `lock_devices` is the union of its members' lock sets, ascending. The input is not
 * modified: use {@link launchGroupIds} to look a replica's group up.
 */
export function launchGroups(replicas: readonly LaunchGroupMember[], visible: readonly string[]): LaunchGroup[] {
  const parent = replicas.map((_, i) => i);
  const find = (i: number): number => {
    let root = i;
    while (parent[root] !== root) root = parent[root] ?? root;
    // Path compression keeps this linear-ish for large replica counts.
    for (let j = i; parent[j] !== root;) {
      const next = parent[j] ?? root;
      parent[j] = root;
      j = next;
    }
    return root;
  };

  const firstUser = new Map<string, number>();
  replicas.forEach((replica, i) => {
    const devices =
      replica.physical_devices !== null && replica.physical_devices.length > 0 ? replica.physical_devices : visible;
    for (const device of devices) {
      const other = firstUser.get(device);
      if (other === undefined) {
        firstUser.set(device, i);
        continue;
      }
      const a = find(other);
      const b = find(i);
      // Keep the earlier replica as root so a group's root is its first member in plan order.
      if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
    }
  });

  const groups: LaunchGroup[] = [];
  const groupOfRoot = new Map<number, LaunchGroup>();
  replicas.forEach((replica, i) => {
    const root = find(i);
    let group = groupOfRoot.get(root);
    if (group === undefined) {
      group = { id: groups.length, lock_devices: [], replicas: [] };
      groupOfRoot.set(root, group);
      groups.push(group);
    }
    group.replicas.push([replica.stage_id, replica.replica_id]);
    group.lock_devices.push(...replica.lock_devices);
  });
  for (const group of groups) group.lock_devices = sortDeviceIds(uniqueDeviceIds(group.lock_devices));
  return groups;
}

/** Key of a replica in {@link launchGroupIds}: `"<stage_id>:<replica_id>"`. */
export function replicaKey(stageId: number, replicaId: number): string {
  return `${stageId}:${replicaId}`;
}

/** Replica ({@link replicaKey}) → launch group id, for filling `ReplicaPlan.group`. */
export function launchGroupIds(groups: readonly LaunchGroup[]): Map<string, number> {
  const ids = new Map<string, number>();
  for (const group of groups) {
    for (const [stageId, replicaId] of group.replicas) ids.set(replicaKey(stageId, replicaId), group.id);
  }
  return ids;
}
