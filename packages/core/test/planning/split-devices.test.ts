import { describe, expect, it } from 'vitest';
import { splitDevicesForReplicas } from '../../src/planning/split-devices.js';
import { catchOmni } from './helpers.js';

describe('splitDevicesForReplicas — seed examples', () => {
  it('pool mode: "1,2,3,4", 2 replicas × 2', () => {
    expect(splitDevicesForReplicas('1,2,3,4', 2, 2, 1)).toEqual(['1,2', '3,4']);
  });
  it('template mode: "0,1", 2 replicas × 2', () => {
    expect(splitDevicesForReplicas('0,1', 2, 2, 1)).toEqual(['0,1', '2,3']);
  });
  it('template mode: "0,1", 4 replicas × 2', () => {
    expect(splitDevicesForReplicas('0,1', 4, 2, 1)).toEqual(['0,1', '2,3', '4,5', '6,7']);
  });
});

describe('splitDevicesForReplicas — one replica or no devices', () => {
  it('returns the string unchanged for one replica, whatever its length', () => {
    expect(splitDevicesForReplicas('0,1,2', 1, 2, 0)).toEqual(['0,1,2']);
    expect(splitDevicesForReplicas(' 0 , 1 ', 1, 2, 0)).toEqual([' 0 , 1 ']);
  });
  it('returns [null] for null devices, even with several replicas (upstream shape)', () => {
    expect(splitDevicesForReplicas(null, 3, 1, 0)).toEqual([null]);
    expect(splitDevicesForReplicas(null, 1, 1, 0)).toEqual([null]);
  });
  it('treats 0 replicas like one', () => {
    expect(splitDevicesForReplicas('0,1', 0, 1, 0)).toEqual(['0,1']);
  });
  it('turns a YAML int into its string', () => {
    expect(splitDevicesForReplicas(1, 1, 1, 0)).toEqual(['1']);
    expect(splitDevicesForReplicas(0, 2, 1, 0)).toEqual(['0', '1']);
  });
});

describe('splitDevicesForReplicas — tp = 1 consequences (b.15 item 6)', () => {
  it('"1" with 2 replicas is template mode and fails: offset 1 is outside [0, 1)', () => {
    const err = catchOmni(() => splitDevicesForReplicas('1', 2, 1, 3));
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.message).toBe('Stage 3: template-mode device offsets [1] of devices "1" are outside [0, 1).');
    expect(err.hint).toContain('pool of 2 ids');
    expect(err.context.stage_idx).toBe(3);
  });
  it('"0" with 2 replicas yields ["0", "1"]', () => {
    expect(splitDevicesForReplicas('0', 2, 1, 0)).toEqual(['0', '1']);
  });
  it('"1,2" with 2 replicas is a pool: ["1", "2"]', () => {
    expect(splitDevicesForReplicas('1,2', 2, 1, 0)).toEqual(['1', '2']);
  });
});

describe('splitDevicesForReplicas — pool mode', () => {
  it('does not validate pool tokens', () => {
    expect(splitDevicesForReplicas('a, b ,c,d', 2, 2, 0)).toEqual(['a,b', 'c,d']);
  });
  it('strips whitespace and drops empty tokens before counting', () => {
    expect(splitDevicesForReplicas(' 4, 5,,6 ,7, ', 2, 2, 0)).toEqual(['4,5', '6,7']);
  });
  it('splits 3 replicas × 2', () => {
    expect(splitDevicesForReplicas('5,4,3,2,1,0', 3, 2, 0)).toEqual(['5,4', '3,2', '1,0']);
  });
});

describe('splitDevicesForReplicas — template mode', () => {
  it('keeps template order and duplicates', () => {
    expect(splitDevicesForReplicas('1,0', 2, 2, 0)).toEqual(['1,0', '3,2']);
    expect(splitDevicesForReplicas('0,0', 2, 2, 0)).toEqual(['0,0', '2,2']);
  });
  it('accepts int() spellings and normalises them', () => {
    expect(splitDevicesForReplicas('+0,01', 2, 2, 0)).toEqual(['0,1', '2,3']);
  });
  it('rejects non-integer template tokens, quoting the string', () => {
    const err = catchOmni(() => splitDevicesForReplicas('0,x', 2, 2, 4));
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.message).toBe('Stage 4: template-mode devices must be integers, got "0,x".');
    expect(err.hint).toBe('write 2 integer offset(s) in [0, 2), e.g. "0,1"');
  });
  it('lists every offending offset and the allowed range', () => {
    const err = catchOmni(() => splitDevicesForReplicas('2,-1', 3, 2, 1));
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.message).toBe('Stage 1: template-mode device offsets [2, -1] of devices "2,-1" are outside [0, 2).');
  });
  it('attaches the location it is given', () => {
    const location = { file: 'p.yaml', line: 7, col: 14 };
    const err = catchOmni(() => splitDevicesForReplicas('1', 2, 1, 0, { location }));
    expect(err.location).toEqual(location);
  });
});

describe('splitDevicesForReplicas — other counts', () => {
  it('names the stage index, the string, its id count and both accepted counts', () => {
    const err = catchOmni(() => splitDevicesForReplicas('0,1,2', 2, 2, 5));
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.message).toBe(
      'Stage 5: devices "0,1,2" has 3 id(s), but 2 replicas need either 2 id(s) (a per-replica template) ' +
        'or 4 ids (a pool of num_replicas × tp) (num_replicas=2, tensor_parallel_size=2).',
    );
    expect(err.hint).toBe('write a template like "0,1" or a pool of 4 device ids');
    expect(err.exitCode).toBe(2);
  });
  it('rejects an empty string with several replicas', () => {
    const err = catchOmni(() => splitDevicesForReplicas('', 2, 1, 0));
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.message).toContain('has 0 id(s)');
  });
  it('rejects a non-positive devices-per-replica', () => {
    const err = catchOmni(() => splitDevicesForReplicas('0,1', 2, 0, 2));
    expect(err.code).toBe('OMNI_PLAN_DEVICES');
    expect(err.message).toBe('Stage 2: devices per replica must be a positive integer, got 0.');
  });
});
