import { fileURLToPath } from 'node:url';
import { STAGE_TYPE, definePlugin, diagnostic, type OmnistagePlugin, type WorkerSpec } from '@omnistage/core';
import { normalizeDiffusionAttentionConfig } from './attention-config.js';
import { checkDiffusionDeviceCount } from './device-count.js';
import { getDiffusionDevicesPerReplica } from './devices-per-replica.js';
import { diffusionEngineArgsJsonSchema } from './engine-args-schema.js';
import { validateDiffusionSamplingParams } from './sampling-params.js';

export const DIFFUSION_PLUGIN_NAME = '@omnistage/plugin-diffusion';

/** Path of the reference diffusion worker script (compiled next to this file). */
export const REFERENCE_DIFFUSION_WORKER = fileURLToPath(new URL('./reference/worker.js', import.meta.url));

/** Engine args of the reference diffusion engine travel in this variable too (read before hello). */
export const DIFFUSION_ENGINE_ARGS_ENV = 'OMNISTAGE_ENGINE_ARGS';

/**
 * Stage type `diffusion`: devices per replica = parallel world size, device-count check at plan
 * time, diffusion sampling params, and — unlike upstream outside head mode — device init locks
 * sized by the world size. Engine `reference` renders PNGs deterministically on a CPU.
 */
export function diffusionPlugin(): OmnistagePlugin {
  return definePlugin({
    name: DIFFUSION_PLUGIN_NAME,
    apply(omni) {
      omni.defineStageType({
        name: 'diffusion',
        defaultEngine: 'reference',
        devicesPerReplica: (stage) => getDiffusionDevicesPerReplica(stage),
        // Upstream skips diffusion locks outside head mode; an LLM and a DiT sharing a GPU must not
        // profile memory at the same time, so we always lock the whole world.
        lockDeviceCount: (_args, stage) => getDiffusionDevicesPerReplica(stage),
        validateStage: (stage, ctx) => {
          validateDiffusionSamplingParams(stage);
          if (stage.engine === null && ctx.options.engine === undefined) {
            ctx.warn(
              diagnostic(
                'OMNI_WARN_REFERENCE_ENGINE',
                `stage ${stage.stage_id} (diffusion) runs on the reference engine: omnistage ships no GPU diffusion engine`,
                stage.locations.at('stage_type'),
                'set `engine:` on the stage to a diffusion engine plugin to run a real model',
              ),
            );
          }
        },
        engineArgsJsonSchema: diffusionEngineArgsJsonSchema,
      });

      omni.hooks.buildArgs.tapPromise({ name: DIFFUSION_PLUGIN_NAME, stage: STAGE_TYPE }, async (args, ctx) => {
        if (ctx.stage.stage_type !== 'diffusion') return args;
        // b.28: too few devices for the world size is a plan error (not swallowed).
        checkDiffusionDeviceCount(ctx.stage, ctx.physicalDevices ?? ctx.plan.visibleDevices);
        const out: Record<string, unknown> = { ...args, model: ctx.plan.model ?? args['model'] ?? null, stage_id: ctx.stage.stage_id };
        const attention = out['diffusion_attention_config'];
        if (attention !== undefined && attention !== null) {
          out['diffusion_attention_config'] = normalizeDiffusionAttentionConfig(
            attention,
            (path) => ctx.stage.locations.at(`engine_args.diffusion_attention_config${path ? `.${path}` : ''}`),
            { stage_id: ctx.stage.stage_id },
          );
        }
        if (ctx.plan.options.diffusionBatchSize !== undefined) out['batch_size'] = ctx.plan.options.diffusionBatchSize;
        return out;
      });

      omni.defineEngine({
        stageType: 'diffusion',
        name: 'reference',
        resolveWorker: (ctx): WorkerSpec => ({
          command: process.execPath,
          args: [REFERENCE_DIFFUSION_WORKER],
          env: { [DIFFUSION_ENGINE_ARGS_ENV]: JSON.stringify(ctx.engineArgs) },
          attach: 'control',
          // The same script can run as a thread of the orchestrator (inline mode, spec b.29).
          inline_module: REFERENCE_DIFFUSION_WORKER,
        }),
      });
    },
  });
}
