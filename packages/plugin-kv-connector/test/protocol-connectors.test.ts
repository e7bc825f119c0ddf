import { describe, expect, it } from 'vitest';
import { PROTOCOL_CONNECTORS, isProtocolConnector, protocolOutputConnector } from '../src/protocol-connectors.js';
import { DEFAULT_SHM_THRESHOLD_BYTES } from '../src/transfer-config.js';

describe('connector classes of omnistage-protocol engines', () => {
  it('registers SharedMemoryConnector and InlineConnector', () => {
    expect(Object.keys(PROTOCOL_CONNECTORS).sort()).toEqual(['InlineConnector', 'SharedMemoryConnector']);
    expect(PROTOCOL_CONNECTORS['SharedMemoryConnector']).toMatchObject({
      transport: 'shm',
      defaults: { shm_threshold_bytes: DEFAULT_SHM_THRESHOLD_BYTES },
    });
    expect(PROTOCOL_CONNECTORS['InlineConnector']).toMatchObject({ transport: 'inline' });
    expect(isProtocolConnector('SharedMemoryConnector')).toBe(true);
    expect(isProtocolConnector('MooncakeStoreConnector')).toBe(false);
    expect(isProtocolConnector('toString')).toBe(false);
  });

  it("says what a protocol engine does with a stage's connector_config", () => {
    const cfg = (c: Record<string, unknown>) => ({ omni_kv_config: { connector_config: c } });
    expect(
      protocolOutputConnector(cfg({ type: 'SharedMemoryConnector', shm_threshold_bytes: 4096, role: 'sender' })),
    ).toEqual({
      type: 'SharedMemoryConnector',
      shm_threshold_bytes: 4096,
    });
    expect(protocolOutputConnector(cfg({ type: 'InlineConnector', role: 'sender' }))).toMatchObject({
      type: 'InlineConnector',
    });
    expect(protocolOutputConnector({})).toMatchObject({ type: 'InlineConnector' });
  });
});
