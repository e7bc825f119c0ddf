import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { pipelineJsonSchema } from '../../src/config/json-schema.js';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => v as Json;

describe('pipelineJsonSchema', () => {
  it('is a draft-07 schema accepting either the legacy or the deploy schema', () => {
    const schema = pipelineJsonSchema();
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    const [legacy, deploy] = schema.anyOf as Json[];
    expect(Object.keys(obj(legacy?.properties))).toEqual([
      'stage_args',
      'async_chunk',
      'runtime',
      'modes',
      'model',
      'plugins',
    ]);
    expect(legacy?.required).toEqual(['stage_args']);
    expect(legacy?.additionalProperties).toBe(false);
    expect(Object.keys(obj(deploy?.properties))).toEqual(
      expect.arrayContaining(['base_config', 'pipeline', 'stages', 'platforms', 'connectors', 'trust_remote_code']),
    );
  });

  it('marks deprecated keys and keeps descriptions', () => {
    const [legacy] = pipelineJsonSchema().anyOf as Json[];
    const stage = obj(obj(obj(legacy?.properties).stage_args).items);
    const runtime = obj((obj(obj(stage.properties).runtime).anyOf as Json[])[0]);
    expect(obj(obj(runtime.properties).max_batch_size).deprecated).toBe(true);
    expect(runtime.additionalProperties).toBe(false);
    expect(obj(obj(stage.properties).stage_id).description).toContain('Stage identity');
  });

  it('includes engine_args schemas contributed by plugins, per stage type', () => {
    const schema = pipelineJsonSchema({
      llm: z.strictObject({ worker_type: z.enum(['ar', 'generation']).optional() }),
      tts: z.object({ voice: z.string() }).transform((v) => v),
    });
    const [legacy, deploy] = schema.anyOf as Json[];
    const variants = obj(obj(obj(legacy?.properties).stage_args).items).anyOf as Json[];
    expect(variants.map((v) => v.title)).toEqual(['llm stage', 'tts stage', 'stage']);
    const llmArgs = obj((obj(obj(variants[0]?.properties).engine_args).anyOf as Json[])[0]);
    expect(obj(obj(llmArgs.properties).worker_type).enum).toEqual(['ar', 'generation']);
    expect(obj(obj(variants[1]?.properties).stage_type).const).toBe('tts');
    const deployStage = obj((obj(obj(deploy?.properties).stages).anyOf as Json[])[0]?.items);
    const deployArgs = (obj(obj(deployStage.properties).engine_args).anyOf as Json[])[0];
    expect(JSON.stringify(deployArgs)).toContain('"voice"');
  });
});

describe('pipelineJsonSchema with plain JSON Schema contributions', () => {
  it('embeds them as they are (without their $schema)', () => {
    const llm = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: { worker_type: { enum: ['ar', 'generation'] } },
      additionalProperties: true,
    };
    const schema = pipelineJsonSchema({ llm });
    const [legacy, deploy] = schema.anyOf as Json[];
    const variants = obj(obj(obj(legacy?.properties).stage_args).items).anyOf as Json[];
    const llmArgs = (obj(obj(variants[0]?.properties).engine_args).anyOf as Json[])[0];
    expect(llmArgs).toEqual({
      title: 'engine_args (llm stages)',
      type: 'object',
      properties: { worker_type: { enum: ['ar', 'generation'] } },
      additionalProperties: true,
    });
    expect(JSON.stringify(deploy)).toContain('"engine_args (llm stages)"');
    // the caller's object is not modified
    expect(llm.$schema).toBe('http://json-schema.org/draft-07/schema#');
  });
});
