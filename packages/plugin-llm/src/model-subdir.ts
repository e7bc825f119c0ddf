import { statSync } from 'node:fs';
import { diagnostic, invalidValue } from '@omnistage/core';
import type { Diagnostic, EngineArgs, StageConfig } from '@omnistage/core';
import { pyPathJoin } from './python-compat.js';

/** True when `p` names an existing directory (the default check of {@link resolveModelSubdirs}). */
export function isExistingDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Inputs of {@link resolveModelSubdirs}. */
export interface ResolveModelSubdirsOptions {
  /** The pipeline's model (CLI `--model` or top-level `model:`): a local directory or a hub id. */
  model: string;
  /** Injectable file-system check, so callers and tests decide what "exists" means. */
  modelDirExists?: (p: string) => boolean;
}

/** What {@link resolveModelSubdirs} decided. */
export interface ResolvedModelSubdirs {
  /** The model path the stage's engine should load. */
  model: string;
  warnings: Diagnostic[];
}

function subdirValue(
  stage: StageConfig,
  engineArgs: EngineArgs,
  key: 'model_subdir' | 'tokenizer_subdir',
): string | null {
  const raw = engineArgs[key];
  if (raw === null || raw === undefined) return null;
  if (typeof raw === 'string') return raw;
  throw invalidValue({
    what: key,
    expected: 'a string (a path relative to the model directory)',
    got: raw,
    location: stage.locations.at(`engine_args.${key}`),
    hint: `Write engine_args.${key} as a relative directory name, e.g. ${key}: "thinker".`,
    context: { stage_id: stage.stage_id },
  });
}

/**
 * Model / tokenizer sub-directory indirection (a step of upstream's `build_engine_args_dict`). Pops `model_subdir` and
 * `tokenizer_subdir` from `engineArgs` (**mutates it**, the working copy of
 * {@link buildEngineArgsDict}) and returns the model path to use:
 *
 * - both absent/null → the model unchanged, no `tokenizer` change;
 * - the base directory is `model` itself when it is an existing local directory; otherwise a
 *   warning `OMNI_WARN_MODEL_SUBDIR_UNRESOLVED` and `model` is used as-is (upstream would look in
 *   the Hugging Face cache first; omnistage resolves against local directories only);
 * - non-empty `model_subdir` → model = base/model_subdir;
 * - non-null `tokenizer_subdir` → `tokenizer` = base/tokenizer_subdir (`''` → base);
 * - else, non-empty `model_subdir` and no `tokenizer` key → `tokenizer` = base (legacy upstream
 *   behaviour: weights in a sub-directory, tokenizer at the root).
 *
 * Paths are joined like Python's `os.path.join` (no normalisation).
 */
export function resolveModelSubdirs(
  stage: StageConfig,
  engineArgs: EngineArgs,
  options: ResolveModelSubdirsOptions,
): ResolvedModelSubdirs {
  const modelSubdir = subdirValue(stage, engineArgs, 'model_subdir');
  const tokenizerSubdir = subdirValue(stage, engineArgs, 'tokenizer_subdir');
  delete engineArgs['model_subdir'];
  delete engineArgs['tokenizer_subdir'];
  let model = options.model;
  const warnings: Diagnostic[] = [];
  if (modelSubdir === null && tokenizerSubdir === null) return { model, warnings };

  const exists = options.modelDirExists ?? isExistingDirectory;
  const base = model;
  if (!exists(base)) {
    const key = modelSubdir !== null ? 'model_subdir' : 'tokenizer_subdir';
    warnings.push(
      diagnostic(
        'OMNI_WARN_MODEL_SUBDIR_UNRESOLVED',
        `Stage ${stage.stage_id}: could not resolve model '${base}' to a local directory; using it as-is for ${key}.`,
        stage.locations.at(`engine_args.${key}`),
        'model_subdir / tokenizer_subdir are resolved against a local model directory only ' +
          '(omnistage does not look into the Hugging Face cache or download). ' +
          'Pass the local snapshot directory as the model, e.g. --model /models/Qwen2.5-Omni-7B.',
      ),
    );
  }

  if (modelSubdir) model = pyPathJoin(base, modelSubdir);
  if (tokenizerSubdir !== null) {
    engineArgs['tokenizer'] = tokenizerSubdir === '' ? base : pyPathJoin(base, tokenizerSubdir);
  } else if (modelSubdir && !Object.hasOwn(engineArgs, 'tokenizer')) {
    engineArgs['tokenizer'] = base;
  }
  return { model, warnings };
}
