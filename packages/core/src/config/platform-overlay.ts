/**
 * The `platforms:` section of deploy files: applied once, for the platform being planned for only.
 */
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { overlayPlatformStage, type DeployStage } from './deploy-stage.js';
import { entryLocation } from './sourced.js';

/**
 * Patches `stages` with the platform's section: per stage_id, `devices` replaces, `env` is
 * dict-merged, `num_replicas` is honoured and other keys are set or deep-merged (upstream's `platforms:` overlay of deploy files).
 */
export function applyPlatformOverlay(
  stages: readonly DeployStage[],
  platformStages: readonly DeployStage[] | undefined,
  platform: string,
): { stages: DeployStage[]; warnings: Diagnostic[] } {
  const out = [...stages];
  const warnings: Diagnostic[] = [];
  for (const patch of platformStages ?? []) {
    const i = out.findIndex((s) => s.stageId === patch.stageId);
    const base = out[i];
    if (!base) {
      warnings.push(
        diagnostic(
          'OMNI_WARN_PLATFORM_STAGE_UNKNOWN',
          `platforms.${platform} patches stage ${patch.stageId}, which the pipeline does not have; the patch is ignored.`,
          entryLocation(patch.stageIdEntry),
          `Known stage ids: ${stages.map((s) => s.stageId).join(', ') || 'none'}.`,
        ),
      );
      continue;
    }
    out[i] = overlayPlatformStage(base, patch);
  }
  return { stages: out, warnings };
}
