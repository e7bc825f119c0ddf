import { describe, expect, it } from 'vitest';
import {
  findPayloadRefs,
  inlinePayloadRef,
  isPayloadRef,
  isValidPayloadKey,
  mapPayloadRefs,
  type PayloadRef,
} from '../../src/connectors/payload-ref.js';
import {
  DEFAULT_SHM_THRESHOLD,
  INLINE_CONNECTOR,
  INLINE_MAX_BYTES,
  SHM_CONNECTOR,
  outputConnectorOf,
} from '../../src/connectors/connector-config.js';
import { parseWorkerMessage } from '../../src/control/protocol.js';

const shm = (key: string, size = 10): PayloadRef => ({ $payload: 1, key, size, via: 'shm' });

describe('payload references', () => {
  it('recognises inline and shm references, and nothing else', () => {
    const inline = inlinePayloadRef(Buffer.from('abc'), { dtype: 'uint8', shape: [3], mime: 'x/y' });
    expect(inline).toMatchObject({
      $payload: 1,
      size: 3,
      via: 'inline',
      dtype: 'uint8',
      shape: [3],
      mime: 'x/y',
      data_base64: 'YWJj',
    });
    expect(isPayloadRef(inline)).toBe(true);
    expect(isPayloadRef(shm('s0r0_ab_0'))).toBe(true);
    expect(isPayloadRef({ ...shm('a-b') })).toBe(false); // an shm key must be a valid file-name part
    expect(isPayloadRef({ ...shm('../etc') })).toBe(false);
    expect(isPayloadRef({ $payload: 1, key: 'k', size: 3, via: 'inline' })).toBe(false); // no bytes
    expect(isPayloadRef({ $payload: 2, key: 'k', size: 3, via: 'shm' })).toBe(false);
    expect(isPayloadRef({ dtype: 'float32', shape: [1], data_base64: 'AAAA' })).toBe(false);
    expect(isPayloadRef(null)).toBe(false);
    // A plugin's connector class names its references' `via`; the key rules are the same.
    expect(isPayloadRef({ $payload: 1, key: 's0r0_ab_1', size: 3, via: 'DiskCacheConnector', dir: '/x' })).toBe(true);
    expect(isPayloadRef({ $payload: 1, key: 's0r0_ab_1', size: 3, via: 'not a class' })).toBe(false);
    expect(isPayloadRef({ $payload: 1, key: '../x', size: 3, via: 'DiskCacheConnector' })).toBe(false);
    expect(isPayloadRef({ $payload: 1, key: 'k', size: 3, via: 7 })).toBe(false);
    expect(isValidPayloadKey('s1r0_0a_1')).toBe(true);
    expect(isValidPayloadKey('')).toBe(false);
  });

  it('gives equal bytes the same inline key (outputs stay deterministic)', () => {
    expect(inlinePayloadRef(Buffer.from('same')).key).toBe(inlinePayloadRef(Buffer.from('same')).key);
    expect(inlinePayloadRef(Buffer.from('same')).key).not.toBe(inlinePayloadRef(Buffer.from('other')).key);
  });

  it('finds references shallow and one level nested, not deeper', () => {
    const a = shm('a');
    const b = shm('b');
    const c = shm('c');
    const d = shm('d');
    expect(findPayloadRefs(a)).toEqual([a]);
    expect(findPayloadRefs({ kind: 'final', tensor: a })).toEqual([a]);
    expect(findPayloadRefs([{ tensor: a }, { tensor: b }])).toEqual([a, b]);
    expect(findPayloadRefs({ outputs: { tensor: c } })).toEqual([c]);
    expect(findPayloadRefs({ x: { y: { tensor: d } } })).toEqual([]);
    expect(findPayloadRefs({ kind: 'image', width: 2, ...a })).toHaveLength(1);
    expect(findPayloadRefs('text')).toEqual([]);
  });

  it('maps references in place and shares everything else', async () => {
    const data = { text: 't', tensor: shm('a'), list: [1, 2], nested: { tensor: shm('b') } };
    const mapped = (await mapPayloadRefs(data, async (r) => ({
      ...r,
      via: 'inline',
      data_base64: r.key,
    }))) as typeof data;
    expect(mapped.tensor).toMatchObject({ via: 'inline', data_base64: 'a' });
    expect(mapped.nested.tensor).toMatchObject({ via: 'inline', data_base64: 'b' });
    expect(mapped.list).toBe(data.list);
    expect(data.tensor.via).toBe('shm'); // the original is untouched
    const none = { text: 'no refs' };
    expect(await mapPayloadRefs(none, async () => 'x')).toBe(none);
  });
});

describe('output connector of a replica', () => {
  it('uses SharedMemoryConnector with its threshold when the stage sends over one', () => {
    const args = {
      omni_kv_config: { connector_config: { type: SHM_CONNECTOR, shm_threshold_bytes: 1024, role: 'sender' } },
    };
    expect(outputConnectorOf(args)).toEqual({ type: SHM_CONNECTOR, shmThresholdBytes: 1024 });
    expect(
      outputConnectorOf({ omni_kv_config: { connector_config: { type: SHM_CONNECTOR, role: 'sender' } } }),
    ).toEqual({
      type: SHM_CONNECTOR,
      shmThresholdBytes: DEFAULT_SHM_THRESHOLD,
    });
  });

  it('is inline for no connector, another class, or a stage that only receives; huge payloads still go to shm', () => {
    const inline = { type: INLINE_CONNECTOR, shmThresholdBytes: INLINE_MAX_BYTES };
    expect(outputConnectorOf({})).toEqual(inline);
    expect(
      outputConnectorOf({ omni_kv_config: { connector_config: { type: 'MooncakeStoreConnector', role: 'sender' } } }),
    ).toEqual(inline);
    expect(
      outputConnectorOf({ omni_kv_config: { connector_config: { type: INLINE_CONNECTOR, role: 'sender' } } }),
    ).toEqual(inline);
    expect(
      outputConnectorOf({ omni_kv_config: { connector_config: { type: SHM_CONNECTOR, role: 'receiver' } } }),
    ).toEqual(inline);
  });

  it("is a plugin's class when the stage sends over one a plugin defines (every payload goes to it)", () => {
    const sender = { omni_kv_config: { connector_config: { type: 'DiskCacheConnector', role: 'sender', dir: '/x' } } };
    expect(outputConnectorOf(sender, ['DiskCacheConnector'])).toEqual({
      type: 'DiskCacheConnector',
      shmThresholdBytes: INLINE_MAX_BYTES,
      plugin: true,
    });
    expect(outputConnectorOf(sender, ['OtherConnector'])).toEqual({
      type: INLINE_CONNECTOR,
      shmThresholdBytes: INLINE_MAX_BYTES,
    });
    const receiver = { omni_kv_config: { connector_config: { type: 'DiskCacheConnector', role: 'receiver' } } };
    expect(outputConnectorOf(receiver, ['DiskCacheConnector'])).toEqual({
      type: INLINE_CONNECTOR,
      shmThresholdBytes: INLINE_MAX_BYTES,
    });
  });
});

describe('payload_ack message', () => {
  it('is a valid worker message with a string key', () => {
    expect(parseWorkerMessage('{"type":"payload_ack","key":"s0r0_ab_0"}')).toEqual({
      type: 'payload_ack',
      key: 's0r0_ab_0',
    });
    expect(() => parseWorkerMessage('{"type":"payload_ack"}')).toThrow(/key must be a string/);
    expect(() => parseWorkerMessage('{"type":"payload_ack","key":5}')).toThrow(/key must be a string/);
  });
});
