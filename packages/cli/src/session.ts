import { dirname } from 'node:path';
import type { Logger } from 'pino';
import {
  OmniError,
  Omnistage,
  loadPipelineConfig,
  loadPlugins,
  planPipeline,
  type InitPlan,
  type PipelineConfig,
  type PlanOptions,
} from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';
import { pythonPlugin } from '@omnistage/plugin-python';
import { secondsOption, type CliValues } from './args.js';
import { detectPlatform } from './platform-detect.js';

/** Everything a command needs after reading the file: the orchestrator, the config and plan options. */
export interface Session {
  omni: Omnistage;
  config: PipelineConfig;
  planOptions: PlanOptions;
  stageInitTimeoutS: number | undefined;
  initTimeoutS: number | undefined;
}

/**
 * Reads the pipeline file, loads the built-in plugins plus those named in the file (`plugins:`)
 * and on the command line (`--plugin`), and collects the plan options. Starts nothing.
 */
/** `--diffusion-batch-size`, checked: a positive integer or nothing. */
function diffusionBatchSize(values: CliValues): number | undefined {
  const given = values['diffusion-batch-size'];
  if (given === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(given)) {
    throw new OmniError('OMNI_USAGE', `--diffusion-batch-size must be a positive integer, got "${given}"`, { hint: 'e.g. --diffusion-batch-size 4' });
  }
  return Number(given);
}

export async function openSession(file: string, values: CliValues, logger: Logger, purpose: 'plan' | 'launch' = 'plan'): Promise<Session> {
  const { platform, detectedDeviceCount } = detectPlatform(values.platform, process.env);
  const config = await loadPipelineConfig(file, {
    platform,
    ...(values.mode === undefined ? {} : { mode: values.mode }),
    ...(values['stage-overrides'] === undefined ? {} : { stageOverrides: values['stage-overrides'] }),
  });
  const external = await loadPlugins(
    [
      ...config.plugins.map((p, i) => ({ specifier: p.specifier, options: p.options, location: config.locations.at(`plugins.${i}`) })),
      ...(values.plugin ?? []).map((specifier) => ({ specifier })),
    ],
    dirname(config.file),
  );
  const batch = diffusionBatchSize(values);
  const omni = new Omnistage({
    logger,
    ...(values['lock-dir'] === undefined ? {} : { lockDir: values['lock-dir'] }),
    // Stage-type flags are the plugins' options: core knows no stage type.
    plugins: [llmPlugin(values.tokenizer === undefined ? {} : { tokenizer: values.tokenizer }), diffusionPlugin(batch === undefined ? {} : { batchSize: batch }), kvConnectorPlugin(), pythonPlugin(), ...external],
  });
  const planOptions: PlanOptions = {
    platform,
    ...(detectedDeviceCount === undefined ? {} : { detectedDeviceCount }),
    ...(values.engine === undefined ? {} : { engine: values.engine }),
    ...(values.model === undefined ? {} : { model: values.model }),
    allowOvercommit: values['allow-overcommit'] ?? false,
    noInline: values['no-inline'] ?? false,
    purpose,
  };
  return {
    omni,
    config,
    planOptions,
    stageInitTimeoutS: secondsOption(values, 'stage-init-timeout'),
    initTimeoutS: secondsOption(values, 'init-timeout'),
  };
}

export function planSession(session: Session): Promise<InitPlan> {
  return planPipeline(session.omni, session.config, session.planOptions);
}
