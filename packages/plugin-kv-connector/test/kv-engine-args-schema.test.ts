import { describe, expect, it } from 'vitest';
import { kvEngineArgsJsonSchema, omniKvConfigJsonSchema } from '../src/kv-engine-args-schema.js';

describe('kvEngineArgsJsonSchema', () => {
  it('describes omni_kv_config under engine_args and is plain JSON', () => {
    expect(kvEngineArgsJsonSchema.properties.omni_kv_config).toBe(omniKvConfigJsonSchema);
    expect(JSON.parse(JSON.stringify(kvEngineArgsJsonSchema))).toEqual(kvEngineArgsJsonSchema);
    const p = omniKvConfigJsonSchema.properties;
    expect(Object.keys(p)).toEqual(
      expect.arrayContaining(['need_send_cache', 'need_recv_cache', 'kv_transfer_criteria', 'rank_mapping']),
    );
    expect(p.need_send_cache.type).toBe('boolean');
    expect(p.rank_mapping.properties.from_tp).toMatchObject({ type: 'integer', minimum: 1 });
    expect(p.rank_mapping.properties.to_tp).toMatchObject({ type: 'integer', minimum: 1 });
    expect(p.kv_transfer_criteria.required).toEqual(['type']);
  });
});
