import { Omnistage, pipelineJsonSchema } from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';

/** `omnistage schema`: JSON Schema (draft-07, input side) of pipeline files, with plugins' engine args. */
export function schemaCommand(): number {
  const omni = new Omnistage({ plugins: [llmPlugin(), diffusionPlugin(), kvConnectorPlugin()] });
  const engineArgs: Record<string, object> = {};
  for (const name of omni.stageTypeNames()) {
    const s = omni.stageType(name)?.engineArgsJsonSchema;
    if (s) engineArgs[name] = s;
  }
  process.stdout.write(`${JSON.stringify(pipelineJsonSchema(engineArgs), null, 2)}\n`);
  return 0;
}
