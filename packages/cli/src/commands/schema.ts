import { Omnistage, loadPlugins, pipelineJsonSchema } from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';
import type { CliValues } from '../args.js';

/**
 * `omnistage schema [--plugin P]`: JSON Schema (draft-07, input side) of pipeline files; every
 * loaded stage type contributes the schema of its `engine_args`.
 */
export async function schemaCommand(values: CliValues): Promise<number> {
  const external = await loadPlugins(
    (values.plugin ?? []).map((specifier) => ({ specifier })),
    process.cwd(),
  );
  const omni = new Omnistage({ plugins: [llmPlugin(), diffusionPlugin(), kvConnectorPlugin(), ...external] });
  const engineArgs: Record<string, object> = {};
  for (const name of omni.stageTypeNames()) {
    const s = omni.engineArgsJsonSchema(name);
    if (s) engineArgs[name] = s;
  }
  process.stdout.write(`${JSON.stringify(pipelineJsonSchema(engineArgs), null, 2)}\n`);
  return 0;
}
