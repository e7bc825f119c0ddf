import { fileURLToPath } from 'node:url';
import {
  STAGE_TYPE,
  definePlugin,
  diagnostic,
  type OmnistagePlugin,
  type StageConfig,
  type StageMetadata,
  type WorkerSpec,
} from '@omnistage/core';
import { normalizeDiffusionAttentionConfig } from './attention-config.js';
import { checkDiffusionDeviceCount } from './device-count.js';
import { getDiffusionDevicesPerReplica } from './devices-per-replica.js';
import { REFERENCE_DIFFUSION_ENGINE_ARGS } from './engine-arg-keys.js';
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
export interface DiffusionPluginOptions {
  /** Requests batched together by diffusion engines (the CLI's `--diffusion-batch-size`); sets `engine_args.batch_size`. */
  batchSize?: number;
}

/** Upstream only resolves hooks that are truthy; an empty string means "no hook". */
function hookOrNull(value: string | null): string | null {
  return value === null || value === '' ? null : value;
}

/**
 * What upstream's `extract_stage_metadata` does differently for diffusion stages:
 * no `engine_output_type`, never comprehension or multimodal, no `prompt_expand_func`, but a
 * `cfg_kv_collect_func`.
 */
export function diffusionStageMetadata(metadata: StageMetadata, stage: StageConfig): StageMetadata {
  return {
    ...metadata,
    engine_output_type: null,
    is_comprehension: false,
    requires_multimodal_data: false,
    prompt_expand_func: null,
    cfg_kv_collect_func: hookOrNull(stage.cfg_kv_collect_func),
  };
}

export function diffusionPlugin(options: DiffusionPluginOptions = {}): OmnistagePlugin {
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

      omni.hooks.extractMetadata
        .for('diffusion')
        .tapPromise({ name: DIFFUSION_PLUGIN_NAME, stage: STAGE_TYPE }, async (metadata, ctx) =>
          diffusionStageMetadata(metadata, ctx.stage),
        );

      omni.hooks.buildArgs.tapPromise({ name: DIFFUSION_PLUGIN_NAME, stage: STAGE_TYPE }, async (args, ctx) => {
        if (ctx.stage.stage_type !== 'diffusion') return args;
        // Too few devices for the world size is a plan error (upstream `build_diffusion_config` raises too).
        checkDiffusionDeviceCount(ctx.stage, ctx.physicalDevices ?? ctx.plan.visibleDevices);
        const out: Record<string, unknown> = {
          ...args,
          model: ctx.plan.model ?? args['model'] ?? null,
          stage_id: ctx.stage.stage_id,
        };
        const attention = out['diffusion_attention_config'];
        if (attention !== undefined && attention !== null) {
          out['diffusion_attention_config'] = normalizeDiffusionAttentionConfig(
            attention,
            (path) => ctx.stage.locations.at(`engine_args.diffusion_attention_config${path ? `.${path}` : ''}`),
            { stage_id: ctx.stage.stage_id },
          );
        }
        if (options.batchSize !== undefined) out['batch_size'] = options.batchSize;
        return out;
      });

      omni.defineEngine({
        stageType: 'diffusion',
        name: 'reference',
        engineArgs: REFERENCE_DIFFUSION_ENGINE_ARGS,
        resolveWorker: (ctx): WorkerSpec => ({
          command: process.execPath,
          args: [REFERENCE_DIFFUSION_WORKER],
          env: { [DIFFUSION_ENGINE_ARGS_ENV]: JSON.stringify(ctx.engineArgs) },
          attach: 'control',
          // The same script can run as a thread of the orchestrator (inline mode: upstream `initialize_diffusion_stage(use_inline=True)`).
          inline_module: REFERENCE_DIFFUSION_WORKER,
        }),
      });
    },
  });
}
