import { describe, expect, it } from 'vitest';
import { diffusionEngineArgsJsonSchema } from '../src/engine-args-schema.js';
import { DIFFUSION_PARALLEL_KEYS } from '../src/parallel-config-fields.js';

type Schema = Record<string, unknown> & { properties: Record<string, Schema> };

describe('diffusionEngineArgsJsonSchema', () => {
  const schema = diffusionEngineArgsJsonSchema as Schema;

  it('is an open object schema with parallel_config and diffusion_attention_config', () => {
    expect(schema.type).toBe('object');
    expect(schema.additionalProperties).toBe(true);
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['parallel_config', 'diffusion_attention_config', 'model']),
    );
  });

  it('closes parallel_config over exactly the keys the world-size validator accepts', () => {
    const pc = schema.properties.parallel_config as Schema;
    expect(pc.additionalProperties).toBe(false);
    expect(Object.keys(pc.properties).sort()).toEqual([...DIFFUSION_PARALLEL_KEYS].sort());
    expect(pc.properties.cfg_parallel_size).toMatchObject({ type: 'integer', enum: [1, 2, 3], default: 1 });
    expect(pc.properties.tensor_parallel_size).toMatchObject({ type: 'integer', minimum: 1 });
    expect(pc.properties.sequence_parallel_size?.type).toEqual(['integer', 'null']);
    expect(pc.properties.hsdp_shard_size?.anyOf).toEqual([{ minimum: 1 }, { enum: [-1] }]);
  });

  it('is plain JSON', () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });
});
