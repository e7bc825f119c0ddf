import { OmniError } from '../errors.js';
import type { PipelineConfig, StageConfig } from '../config/types.js';
import type { PlanOptions } from '../hooks/contexts.js';
import type { StageTypeDefinition } from '../plugins/definition-types.js';
import type { Definitions } from '../plugins/definitions.js';

/** The stage type definition of every stage, in stage order; an unknown type is a config error at its line. */
export function resolveStageTypes(defs: Definitions, config: PipelineConfig): StageTypeDefinition[] {
  return config.stages.map((stage) => {
    const def = defs.stageType(stage.stage_type);
    if (!def) {
      const known = defs.stageTypeNames();
      throw new OmniError(
        'OMNI_STAGE_TYPE_UNKNOWN',
        `stage ${stage.stage_id} has stage_type "${stage.stage_type}", which no loaded plugin handles (known: ${known.map((k) => `"${k}"`).join(', ') || 'none'})`,
        {
          location: stage.locations.at('stage_type'),
          context: { stage_id: stage.stage_id },
          hint: `use one of ${known.join(', ')}, or load the plugin that defines "${stage.stage_type}" (plugins: in the file, or --plugin)`,
        },
      );
    }
    return def;
  });
}

/** The engine of a stage: `--engine` > the stage's `engine:` > the stage type's default; one nobody provides is a config error. */
export function resolveEngine(
  defs: Definitions,
  stage: StageConfig,
  def: StageTypeDefinition,
  options: PlanOptions,
): string {
  const engine = options.engine ?? stage.engine ?? def.defaultEngine;
  if (!defs.engine(stage.stage_type, engine)) {
    const known = defs.engineNames(stage.stage_type);
    const fromCli = options.engine !== undefined;
    throw new OmniError(
      'OMNI_ENGINE_UNKNOWN',
      `stage ${stage.stage_id} (type "${stage.stage_type}") asks for engine "${engine}"${fromCli ? ' (--engine)' : ''}, which no loaded plugin provides for that type (known: ${known.join(', ') || 'none'})`,
      {
        location: fromCli ? undefined : stage.locations.at('engine'),
        context: { stage_id: stage.stage_id },
        hint: `use one of ${known.join(', ')}, or load the plugin that provides engine "${engine}"`,
      },
    );
  }
  return engine;
}
