import { isAbsolute, resolve as resolvePath, dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { OmniError } from '../errors.js';
import type { StageConfig } from '../config/types.js';
import type { InputProcessor } from '../planning/types.js';

/**
 * Default processor: a single source's output is passed on as it is (text, token ids, tensors,
 * images: engines read what they understand); several sources arrive as an array in source order.
 */
export const defaultInputProcessor: InputProcessor = (sources) =>
  sources.length === 1 ? sources[0]!.data : sources.map((s) => s.data);

/** True for a JS module specifier (`./processors.js#fn`), false for a Python dotted path (`pkg.mod.fn`). */
export function isJsProcessorSpecifier(spec: string): boolean {
  return (
    spec.startsWith('./') ||
    spec.startsWith('../') ||
    isAbsolute(spec) ||
    spec.startsWith('file:') ||
    /\.(m?js|cjs)(#|$)/.test(spec)
  );
}

/**
 * Resolves `custom_process_input_func` when it is a JS specifier: `<module>#<export>` relative to
 * the YAML file (default export when `#` is absent). Python dotted paths stay strings for engines
 * and give null here. Errors point at the YAML line.
 */
export async function loadInputProcessor(stage: StageConfig, pipelineFile: string): Promise<InputProcessor | null> {
  const spec = stage.custom_process_input_func;
  if (spec === null || !isJsProcessorSpecifier(spec)) return null;
  const hash = spec.lastIndexOf('#');
  const modulePart = hash >= 0 ? spec.slice(0, hash) : spec;
  const exportName = hash >= 0 ? spec.slice(hash + 1) : 'default';
  const location = stage.locations.at('custom_process_input_func');
  const url = modulePart.startsWith('file:')
    ? modulePart
    : pathToFileURL(resolvePath(dirname(pipelineFile), modulePart)).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `stage ${stage.stage_id}: custom_process_input_func module "${modulePart}" could not be loaded: ${(err as Error).message}`,
      {
        location,
        cause: err,
        context: { stage_id: stage.stage_id },
        hint: 'the path is relative to the pipeline file; use ./file.js#exportName',
      },
    );
  }
  const fn = mod[exportName];
  if (typeof fn !== 'function') {
    const available = Object.keys(mod).filter((k) => typeof mod[k] === 'function');
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `stage ${stage.stage_id}: "${modulePart}" has no exported function "${exportName}"`,
      {
        location,
        context: { stage_id: stage.stage_id },
        hint:
          available.length > 0
            ? `exported functions: ${available.join(', ')}`
            : 'export a function (sources, ctx) => input',
      },
    );
  }
  return fn as InputProcessor;
}
