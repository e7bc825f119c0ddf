import { describe, expect, it } from 'vitest';
import { launchGroupIds, launchGroups, replicaKey, type LaunchGroupMember } from '../../src/planning/launch-groups.js';

const VISIBLE = ['0', '1', '2', '3', '4', '5', '6', '7'];

function r(stage_id: number, replica_id: number, physical: string[] | null, lock?: string[]): LaunchGroupMember {
  return { stage_id, replica_id, physical_devices: physical, lock_devices: lock ?? (physical ?? ['0']).slice(0, 1) };
}

describe('launchGroups', () => {
  it('#4653: "0,1,2,3" and "3" share device 3 and so one group', () => {
    const groups = launchGroups([r(0, 0, ['0', '1', '2', '3'], ['0', '1', '2', '3']), r(1, 0, ['3'])], VISIBLE);
    expect(groups).toEqual([
      {
        id: 0,
        lock_devices: ['0', '1', '2', '3'],
        replicas: [
          [0, 0],
          [1, 0],
        ],
      },
    ]);
  });

  it('disjoint devices make separate groups', () => {
    expect(launchGroups([r(0, 0, ['0']), r(1, 0, ['1'])], VISIBLE)).toEqual([
      { id: 0, lock_devices: ['0'], replicas: [[0, 0]] },
      { id: 1, lock_devices: ['1'], replicas: [[1, 0]] },
    ]);
  });

  it('joins transitively (A–B on 1, B–C on 2) and keeps plan order', () => {
    const groups = launchGroups(
      [
        r(0, 0, ['0', '1'], ['0', '1']),
        r(1, 0, ['5']),
        r(2, 0, ['2', '3'], ['2', '3']),
        r(3, 0, ['1', '2'], ['1', '2']),
      ],
      VISIBLE,
    );
    expect(groups).toEqual([
      {
        id: 0,
        lock_devices: ['0', '1', '2', '3'],
        replicas: [
          [0, 0],
          [2, 0],
          [3, 0],
        ],
      },
      { id: 1, lock_devices: ['5'], replicas: [[1, 0]] },
    ]);
  });

  it('a replica that inherits (null or empty) uses every visible device and joins everything', () => {
    const groups = launchGroups([r(0, 0, ['0']), r(1, 0, ['1']), r(2, 0, null, ['0']), r(3, 0, ['6'])], VISIBLE);
    expect(groups).toHaveLength(1);
    expect(groups[0]?.replicas).toEqual([
      [0, 0],
      [1, 0],
      [2, 0],
      [3, 0],
    ]);
    expect(launchGroups([r(0, 0, []), r(1, 0, ['4'])], VISIBLE)).toHaveLength(1);
  });

  it('an inheriting replica does not join devices that are not visible', () => {
    const groups = launchGroups([r(0, 0, null, ['2']), r(1, 0, ['9'])], ['2', '3']);
    expect(groups.map((g) => g.replicas)).toEqual([[[0, 0]], [[1, 0]]]);
  });

  it('group ids follow the first member in plan order', () => {
    const groups = launchGroups([r(0, 0, ['4']), r(0, 1, ['5']), r(1, 0, ['5']), r(1, 1, ['4'])], VISIBLE);
    expect(groups).toEqual([
      {
        id: 0,
        lock_devices: ['4'],
        replicas: [
          [0, 0],
          [1, 1],
        ],
      },
      {
        id: 1,
        lock_devices: ['5'],
        replicas: [
          [0, 1],
          [1, 0],
        ],
      },
    ]);
  });

  it('groups by physical devices, so different strings for one device still collide', () => {
    // e.g. logical "0" under CUDA_VISIBLE_DEVICES=3 and a physical pass-through "3"
    const groups = launchGroups([r(0, 0, ['3']), r(1, 0, ['3'])], ['3']);
    expect(groups).toHaveLength(1);
  });

  it("sorts a group's lock set numerically", () => {
    const groups = launchGroups([r(0, 0, ['10', '2'], ['2', '10']), r(1, 0, ['2', '9'], ['2', '9'])], VISIBLE);
    expect(groups[0]?.lock_devices).toEqual(['2', '9', '10']);
  });

  it('returns no groups for no replicas and does not mutate its input', () => {
    expect(launchGroups([], VISIBLE)).toEqual([]);
    const input = [r(0, 0, ['1', '0'], ['0', '1'])];
    const copy = structuredClone(input);
    launchGroups(input, VISIBLE);
    expect(input).toEqual(copy);
  });
});

describe('launchGroupIds', () => {
  it('maps each replica to its group id', () => {
    const ids = launchGroupIds(launchGroups([r(0, 0, ['0']), r(1, 0, ['1']), r(1, 1, ['0'])], VISIBLE));
    expect(ids.get(replicaKey(0, 0))).toBe(0);
    expect(ids.get(replicaKey(1, 0))).toBe(1);
    expect(ids.get(replicaKey(1, 1))).toBe(0);
    expect(replicaKey(1, 1)).toBe('1:1');
  });
});
