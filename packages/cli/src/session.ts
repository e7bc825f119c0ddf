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
export async function openSession(file: string, values: CliValues, logger: Logger, runId?: string): Promise<Session> {
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
  const omni = new Omnistage({
    logger,
    ...(values['lock-dir'] === undefined ? {} : { lockDir: values['lock-dir'] }),
    plugins: [llmPlugin(), diffusionPlugin(), kvConnectorPlugin(), pythonPlugin(), ...external],
  });
  const diffusionBatch = values['diffusion-batch-size'];
  if (diffusionBatch !== undefined && !/^[1-9]\d*$/.test(diffusionBatch)) {
    throw new OmniError('OMNI_USAGE', `--diffusion-batch-size must be a positive integer, got "${diffusionBatch}"`, {
      hint: 'e.g. --diffusion-batch-size 4',
    });
  }
  const planOptions: PlanOptions = {
    platform,
    ...(detectedDeviceCount === undefined ? {} : { detectedDeviceCount }),
    ...(values.engine === undefined ? {} : { engine: values.engine }),
    ...(values.model === undefined ? {} : { model: values.model }),
    ...(values.tokenizer === undefined ? {} : { tokenizer: values.tokenizer }),
    allowOvercommit: values['allow-overcommit'] ?? false,
    noInline: values['no-inline'] ?? false,
    ...(diffusionBatch === undefined ? {} : { diffusionBatchSize: Number(diffusionBatch) }),
    ...(runId === undefined ? {} : { runId, purpose: 'launch' as const }),
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
