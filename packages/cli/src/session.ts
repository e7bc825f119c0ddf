import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import {
  type BringUpOptions,
  OmniError,
  Omnistage,
  loadPipelineConfig,
  loadPlugins,
  planPipeline,
  type InitPlan,
  type PipelineConfig,
  type LocationIndex,
  type PlanOptions,
  type PluginRef,
} from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';
import { pythonPlugin } from '@omnistage/plugin-python';
import { upstreamPipelinesPlugin } from '@omnistage/plugin-upstream-pipelines';
import { secondsOption, type CliValues } from './args.js';
import { detectPlatform } from './platform-detect.js';
import { openReplicaLogs } from './replica-logs.js';

/** Everything a command needs after reading the file: the orchestrator, the config and plan options. */
export interface Session {
  omni: Omnistage;
  config: PipelineConfig;
  planOptions: PlanOptions;
  stageInitTimeoutS: number | undefined;
  initTimeoutS: number | undefined;
  /** `--replica-logs DIR`: where replica output lines go instead of the log. */
  onReplicaLine: BringUpOptions['onReplicaLine'];
}

/** `--diffusion-batch-size`, checked: a positive integer or nothing. */
function diffusionBatchSize(values: CliValues): number | undefined {
  const given = values['diffusion-batch-size'];
  if (given === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(given)) {
    throw new OmniError('OMNI_USAGE', `--diffusion-batch-size must be a positive integer, got "${given}"`, {
      hint: 'e.g. --diffusion-batch-size 4',
    });
  }
  return Number(given);
}

/**
 * Reads the pipeline file, loads the built-in plugins plus those named in the file (`plugins:`)
 * and on the command line (`--plugin`), and collects the plan options. Starts nothing.
 */
export async function openSession(
  file: string,
  values: CliValues,
  logger: Logger,
  purpose: 'plan' | 'launch' = 'plan',
): Promise<Session> {
  const { platform, detectedDeviceCount } = detectPlatform(values.platform, process.env);
  const batch = diffusionBatchSize(values);
  // Deploy files select their topology from the pipelines plugins register, so the plugins the
  // file names are loaded as soon as the loader knows them, before the topology is chosen.
  let omni: Omnistage | undefined;
  const openOmni = async (
    plugins: readonly PluginRef[],
    locations: LocationIndex,
    base: string,
  ): Promise<Omnistage> => {
    const external = await loadPlugins(
      [
        ...plugins.map((p, i) => ({
          specifier: p.specifier,
          options: p.options,
          location: locations.at(`plugins.${i}`),
        })),
        ...(values.plugin ?? []).map((specifier) => ({ specifier })),
      ],
      base,
    );
    return new Omnistage({
      logger,
      ...(values['lock-dir'] === undefined ? {} : { lockDir: values['lock-dir'] }),
      // Stage-type flags are the plugins' options: core knows no stage type.
      plugins: [
        llmPlugin(values.tokenizer === undefined ? {} : { tokenizer: values.tokenizer }),
        diffusionPlugin(batch === undefined ? {} : { batchSize: batch }),
        kvConnectorPlugin(),
        pythonPlugin(),
        upstreamPipelinesPlugin(),
        ...external,
      ],
    });
  };
  const config = await loadPipelineConfig(file, {
    platform,
    ...(values.mode === undefined ? {} : { mode: values.mode }),
    ...(values['stage-overrides'] === undefined ? {} : { stageOverrides: values['stage-overrides'] }),
    ...(values.pipeline === undefined ? {} : { pipeline: values.pipeline }),
    ...(values.model === undefined ? {} : { model: values.model }),
    ...(values['strategy-config'] === undefined ? {} : { strategyConfig: values['strategy-config'] }),
    pipelines: async (top) => (omni = await openOmni(top.plugins, top.locations, dirname(resolve(file)))).pipelines,
  });
  // `--mode` is an explicit request: a mode the file does not declare is a usage error, not a warning.
  const modeProblem =
    values.mode === undefined
      ? undefined
      : config.warnings.find((w) => w.code === 'OMNI_WARN_MODE_UNKNOWN' || w.code === 'OMNI_WARN_MODE_IGNORED');
  if (modeProblem)
    throw new OmniError('OMNI_USAGE', `--mode ${values.mode}: ${modeProblem.message}`, {
      ...(modeProblem.hint === undefined ? {} : { hint: modeProblem.hint }),
    });
  omni ??= await openOmni(config.plugins, config.locations, dirname(config.file));
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
    onReplicaLine: values['replica-logs'] === undefined ? undefined : openReplicaLogs(values['replica-logs']),
  };
}

export function planSession(session: Session): Promise<InitPlan> {
  return planPipeline(session.omni, session.config, session.planOptions);
}
