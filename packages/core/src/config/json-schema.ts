/**
 * JSON Schema of the pipeline file for editors (`omnistage schema`; reference it from YAML with
 * `# yaml-language-server: $schema=./pipeline.schema.json`). Input side, draft-07, because the Red
 * Hat YAML language server validates with draft-07.
 */
import * as z from 'zod';
import {
  createDeployFileSchema,
  createDeployStageSchema,
  createLegacyFileSchema,
  createLegacyStageSchema,
  legacyStageSchema,
} from './schema.js';

/**
 * `engine_args` schemas by the stage type whose plugin contributes them: a zod schema, or a plain
 * JSON Schema object (what `StageTypeDefinition.engineArgsJsonSchema` holds).
 */
export type EngineArgsSchemas = Readonly<Record<string, z.ZodType | object>>;

/**
 * The JSON Schema accepting both upstream schemas. With `engineArgs`, each legacy stage becomes
 * `anyOf` one variant per stage type (its `engine_args` typed by the plugin's schema; `llm` also
 * matches stages without `stage_type`) plus a generic variant for other types; a deploy stage's
 * nested `engine_args:` block is `anyOf` the plugin schemas (deploy files carry no stage type).
 */
export function pipelineJsonSchema(engineArgs: EngineArgsSchemas = {}): Record<string, unknown> {
  // Plain JSON Schemas ride through zod as placeholders swapped in by `override` below.
  const raw = new Map<unknown, Record<string, unknown>>();
  const asZod = (schema: z.ZodType | object, title: string): z.ZodType => {
    if (schema instanceof z.ZodType) return schema.meta({ title });
    const placeholder = z.unknown();
    const { $schema: _ignored, ...rest } = schema as Record<string, unknown>;
    raw.set(placeholder, { title, ...rest });
    return placeholder;
  };
  const contributed = Object.entries(engineArgs);

  const [firstType, ...otherTypes] = contributed.map(([type, schema]) =>
    createLegacyStageSchema(asZod(schema, `engine_args (${type} stages)`))
      .extend({ stage_type: type === 'llm' ? z.literal('llm').optional() : z.literal(type) })
      .meta({
        title: `${type} stage`,
        description: `A stage of type ${type}; engine_args as the ${type} plugin defines them.`,
      }),
  );
  const legacyStage = firstType
    ? z.union([
        firstType,
        ...otherTypes,
        legacyStageSchema.meta({ title: 'stage', description: 'A stage of any type.' }),
      ])
    : legacyStageSchema;

  const deployArgs = contributed.map(([type, schema]) => asZod(schema, `engine_args (${type} stages)`));
  const deployStage =
    deployArgs.length > 0
      ? createDeployStageSchema(z.union([...deployArgs, z.record(z.string(), z.unknown())]))
      : createDeployStageSchema();

  const file = z.union([createLegacyFileSchema(legacyStage), createDeployFileSchema(deployStage)]).meta({
    title: 'omnistage pipeline',
    description: 'A vLLM-Omni stage configuration: legacy stage_args or deploy stages.',
  });
  return z.toJSONSchema(file, {
    io: 'input',
    target: 'draft-07',
    unrepresentable: 'any',
    override: (ctx) => {
      const replacement = raw.get(ctx.zodSchema);
      if (!replacement) return;
      const target = ctx.jsonSchema as Record<string, unknown>;
      for (const key of Object.keys(target)) delete target[key];
      Object.assign(target, structuredClone(replacement));
    },
  }) as Record<string, unknown>;
}
