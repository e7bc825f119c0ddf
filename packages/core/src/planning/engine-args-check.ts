/**
 * Engine-arg keys checked against what the stage's engine takes (`EngineDefinition.engineArgs`),
 * once the planner knows the engine: a typo must not pass silently, and a typo of a key the
 * planner reads must not change what runs.
 */
import { editDistance } from '../config/did-you-mean.js';
import { OVERRIDE_SAMPLING_KEYS, OVERRIDE_STAGE_KEYS } from '../config/stage-overrides.js';
import type { StageConfig } from '../config/types.js';
import type { Diagnostic } from '../diagnostics.js';
import { engineArgValueInvalid, misspeltPlannerKey, unknownEngineArg, unknownOverrideKey } from '../error-messages.js';
import type { EngineArgsDeclaration, EngineArgsZodSchema } from '../plugins/definition-types.js';

/**
 * Engine args the planner reads to place and admit replicas (admission, lock sets, devices per
 * replica of the built-in stage types). A near miss of one is an error for every engine.
 */
export const PLANNER_ENGINE_ARGS: readonly string[] = [
  'gpu_memory_utilization',
  'tensor_parallel_size',
  'pipeline_parallel_size',
  'data_parallel_size',
  'data_parallel_size_local',
  'prefill_context_parallel_size',
  'parallel_config',
];

/**
 * Engine args of every stage whatever its engine, always taken: what core reads (metadata,
 * connectors) and `async_chunk`, which the loader copies into stages from the file's top level.
 */
const CORE_ENGINE_ARGS: readonly string[] = [
  ...PLANNER_ENGINE_ARGS,
  'model_stage',
  'engine_output_type',
  'omni_kv_config',
  'async_chunk',
];

/** The largest edit distance at which a key counts as a misspelling of a planner key. */
const PLANNER_NEAR_MISS = 3;

/** What {@link checkEngineArgs} checks a stage against. */
export interface EngineArgsCheck {
  /** The engine's name, for messages. */
  engine: string;
  declaration: EngineArgsDeclaration | undefined;
  /** Keys of the shared engine-args schemas (`defineSharedEngineArgsSchema`). */
  sharedKeys: ReadonlySet<string>;
  /** `file:line:col` of warnings already given (a key another check warned about gets no second warning). */
  warnedAt: ReadonlySet<string>;
}

const isZod = (d: EngineArgsDeclaration): d is EngineArgsZodSchema =>
  typeof d === 'object' && !Array.isArray(d) && 'shape' in d;

/** The keys a declaration names, or null for an engine that takes any key. */
function declaredKeys(declaration: EngineArgsDeclaration | undefined): readonly string[] | null {
  if (declaration === undefined || declaration === 'any') return null;
  return isZod(declaration) ? Object.keys(declaration.shape) : declaration;
}

const normalise = (key: string): string => key.toLowerCase().replace(/-/g, '_');

/** The planner key `key` misspells, if any. */
function plannerNearMiss(key: string): string | undefined {
  const k = normalise(key);
  return PLANNER_ENGINE_ARGS.find((p) => {
    const d = editDistance(k, p);
    return d > 0 && d <= PLANNER_NEAR_MISS;
  });
}

const locationKey = (l: { file: string; line: number; col: number }): string => `${l.file}:${l.line}:${l.col}`;

/**
 * Checks one stage's engine-arg keys: a near miss of a planner key is an error (any engine); for an
 * engine that declares its args, an unknown key is a warning at the key, or an error when
 * `--stage-overrides` named it bare; a zod declaration checks the values too.
 *
 * @returns the warnings. @throws OmniError `OMNI_CONFIG_INVALID`, `OMNI_CONFIG_OVERRIDE_INVALID`.
 */
export function checkEngineArgs(stage: StageConfig, check: EngineArgsCheck): Diagnostic[] {
  const declared = declaredKeys(check.declaration);
  const known = new Set([...(declared ?? []), ...CORE_ENGINE_ARGS, ...check.sharedKeys]);
  const bare = new Set(stage.override_args ?? []);
  const warnings: Diagnostic[] = [];
  let sorted: string[] | undefined;
  for (const key of Object.keys(stage.engine_args)) {
    if (known.has(key)) continue;
    const location = stage.locations.keyAt(`engine_args.${key}`);
    const planner = plannerNearMiss(key);
    if (planner !== undefined) throw misspeltPlannerKey({ stageId: stage.stage_id, key, intended: planner, location });
    if (declared === null) continue;
    sorted ??= [...known].sort((a, b) => a.localeCompare(b));
    const site = {
      stageId: stage.stage_id,
      stageType: stage.stage_type,
      key,
      engine: check.engine,
      known: sorted,
      location,
    };
    if (bare.has(key))
      throw unknownOverrideKey({ ...site, overrideKeys: [...OVERRIDE_STAGE_KEYS, ...OVERRIDE_SAMPLING_KEYS] });
    if (!check.warnedAt.has(locationKey(location))) warnings.push(unknownEngineArg(site));
  }
  if (check.declaration !== undefined && isZod(check.declaration)) checkValues(stage, check.engine, check.declaration);
  return warnings;
}

/** A zod declaration's verdict on the values; its first issue is the error, at the value. */
function checkValues(stage: StageConfig, engine: string, schema: EngineArgsZodSchema): void {
  const result = schema.safeParse(stage.engine_args);
  if (result.success) return;
  const issue = result.error?.issues[0] ?? { path: [], message: "the values do not match the engine's schema" };
  const path = issue.path.map(String);
  const location = stage.locations.at(['engine_args', ...path]);
  throw engineArgValueInvalid({
    stageId: stage.stage_id,
    engine,
    path: path.join('.'),
    message: issue.message,
    location,
  });
}
