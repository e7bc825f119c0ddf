/**
 * `modes:` filtering of upstream's deploy files (`vllm_omni/deploy/<model>.yaml`): a mode keeps a subset of the stages. Upstream never fails here;
 * every problem is a warning and the pipeline stays unfiltered.
 */
import * as z from 'zod';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { didYouMeanPrefix } from './did-you-mean.js';
import { modeSchema } from './schema.js';
import { entryLocation, toJS, type SourcedEntry } from './sourced.js';
import type { StageConfig } from './types.js';

/** Upstream's active mode when the file declares modes and the caller names none. */
export const DEFAULT_MODE = 'text-to-image';

const modesSchema = z.array(modeSchema).nullable();

/**
 * The stages of `mode` (default {@link DEFAULT_MODE}) in their original order, with `stage_idx`
 * renumbered; all stages plus a warning when the mode is unknown or matches no stage.
 */
export function filterStagesByMode(
  stages: readonly StageConfig[],
  modesEntry: SourcedEntry | undefined,
  requested: string | undefined,
): { stages: StageConfig[]; warnings: Diagnostic[] } {
  const parsed = modesEntry ? modesSchema.safeParse(toJS(modesEntry.node)) : undefined;
  const modes = parsed?.success ? (parsed.data ?? []) : [];
  if (modes.length === 0 || !modesEntry) {
    // A mode asked for by name on a file without modes is most likely the wrong file or a typo'd flag.
    const ignored =
      requested === undefined
        ? []
        : [
            diagnostic(
              'OMNI_WARN_MODE_IGNORED',
              `Mode \`${requested}\` was asked for, but the pipeline file declares no \`modes\`; all stages are kept.`,
              undefined,
              'Remove --mode, or add a `modes:` list to the file.',
            ),
          ];
    return { stages: [...stages], warnings: ignored };
  }

  const active = requested ?? DEFAULT_MODE;
  const index = modes.findIndex((m) => m.mode === active);
  const mode = modes[index];
  if (!mode) {
    const declared = modes.map((m) => m.mode);
    const guess = didYouMeanPrefix(active, declared);
    return {
      stages: [...stages],
      warnings: [
        diagnostic(
          'OMNI_WARN_MODE_UNKNOWN',
          `Mode \`${active}\`${requested === undefined ? ' (the default)' : ''} is not declared in \`modes\`; all stages are kept.`,
          modesEntry.keyLoc,
          `${guess}Declared modes: ${declared.join(', ')}.`,
        ),
      ],
    };
  }
  const ids = new Set(Array.isArray(mode.stages) ? mode.stages : [mode.stages]);
  const kept = stages.filter((s) => ids.has(s.stage_id));
  if (kept.length === 0) {
    const item = modesEntry.node.kind === 'seq' ? modesEntry.node.items[index] : undefined;
    return {
      stages: [...stages],
      warnings: [
        diagnostic(
          'OMNI_WARN_MODE_NO_STAGES',
          `Mode \`${active}\` lists stage ids ${[...ids].join(', ')}, which match no stage; all stages are kept.`,
          item?.loc ?? entryLocation(modesEntry),
          `Stage ids in this pipeline: ${stages.map((s) => s.stage_id).join(', ')}.`,
        ),
      ],
    };
  }
  kept.forEach((s, i) => {
    s.stage_idx = i;
  });
  return { stages: kept, warnings: [] };
}
