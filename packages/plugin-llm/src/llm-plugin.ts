import { fileURLToPath } from 'node:url';
import {
  OmniError,
  STAGE_TYPE,
  definePlugin,
  diagnostic,
  type EngineDefinition,
  type OmnistagePlugin,
  type PlanContext,
  type PluginApi,
  type ReplicaContext,
  type StageConfig,
  type WorkerSpec,
} from '@omnistage/core';
import { buildEngineArgsDict } from './engine-args-dict.js';
import { llmEngineArgsJsonSchema } from './engine-args-schema.js';
import { llmLockDeviceCount } from './lock-device-count.js';
import { REFERENCE_LLM_ENGINE_ARGS } from './reference/engine-arg-keys.js';
import { ENGINE_ARGS_ENV } from './reference/knobs.js';
import { validateLlmSamplingParams } from './sampling-params.js';
import { getStageDevicesPerReplica } from './stage-devices.js';
import { deriveVllmServeArgv } from './vllm-serve-argv.js';
import { attachVllmServe } from './vllm/attach.js';
import { nixlEdgeFlow } from './vllm/disaggregated.js';

export const LLM_PLUGIN_NAME = '@omnistage/plugin-llm';

export interface LlmPluginOptions {
  /** Executable for the `vllm` engine (default `$OMNISTAGE_VLLM_COMMAND` or `vllm`). */
  vllmCommand?: string;
  /** First port of `vllm` replicas: replica r of stage at index i listens on base + 100·i + r (default 18100). */
  vllmBasePort?: number;
  /** Tokenizer given to every stage that does not name its own (the CLI's `--tokenizer`). */
  tokenizer?: string;
}

/** Path of the reference LLM worker script (compiled next to this file). */
export const REFERENCE_LLM_WORKER = fileURLToPath(new URL('./reference/worker.js', import.meta.url));

/** Port of a `vllm` replica: `engine_args.port` if set, else derived from the plan so replicas never collide. */
export function vllmReplicaPort(ctx: ReplicaContext, basePort: number): number {
  const explicit = ctx.engineArgs['port'];
  if (typeof explicit === 'number' && Number.isInteger(explicit)) return explicit + ctx.replicaId;
  return basePort + 100 * ctx.stage.stage_idx + ctx.replicaId;
}

/**
 * Stage type `llm` (vLLM semantics: TP-sized device slices, TP×PP×DP×PCP lock sets, vLLM
 * sampling params, worker-class resolution) with engines `reference` (a deterministic worker
 * process for any machine) and `vllm` (`vllm serve`, attached over HTTP).
 */
export function llmPlugin(options: LlmPluginOptions = {}): OmnistagePlugin {
  return definePlugin({
    name: LLM_PLUGIN_NAME,
    apply(omni) {
      omni.defineStageType({
        name: 'llm',
        defaultEngine: 'vllm',
        devicesPerReplica: (stage) => getStageDevicesPerReplica(stage),
        lockDeviceCount: (args) => llmLockDeviceCount(args),
        validateStage: (stage, ctx) => {
          validateLlmSamplingParams(stage);
          warnStageModelOverridden(stage, ctx);
        },
        engineArgsJsonSchema: llmEngineArgsJsonSchema,
      });
      tapLlmEngineArgs(omni, options);
      omni.defineEngine(referenceEngine());
      omni.defineEngine(vllmEngine(options));
    },
  });
}

/** Builds an `llm` stage's engine-args dict by vLLM's rules (and the env they imply). */
function tapLlmEngineArgs(omni: PluginApi, options: LlmPluginOptions): void {
  omni.hooks.buildArgs.tapPromise({ name: LLM_PLUGIN_NAME, stage: STAGE_TYPE }, async (args, ctx) => {
    if (ctx.stage.stage_type !== 'llm') return args;
    const built = buildEngineArgsDict(
      { ...ctx.stage, engine_args: args },
      {
        model: ctx.plan.model ?? '',
        platform: ctx.plan.platform,
        cliTokenizer: options.tokenizer ?? null,
        baseEnv: ctx.plan.options.env ?? process.env,
      },
    );
    Object.assign(ctx.env, built.env);
    for (const w of built.warnings) ctx.plan.warn(w);
    return built.engineArgs;
  });
}

function referenceEngine(): EngineDefinition {
  return {
    stageType: 'llm',
    name: 'reference',
    engineArgs: REFERENCE_LLM_ENGINE_ARGS,
    // Causal: a streaming edge into it starts it on the first chunk (reference/serve-request.ts).
    streamsInput: true,
    resolveWorker: (ctx): WorkerSpec => ({
      command: process.execPath,
      args: [REFERENCE_LLM_WORKER],
      env: { [ENGINE_ARGS_ENV]: JSON.stringify(ctx.engineArgs) },
      attach: 'control',
      ...(ctx.engineArgs['init_phases'] === true ? { phases: true } : {}),
    }),
  };
}

function vllmEngine(options: LlmPluginOptions): EngineDefinition {
  return {
    stageType: 'llm',
    name: 'vllm',
    // Every key becomes a `vllm serve` flag; deriveVllmServeArgv warns about those it does not know.
    engineArgs: 'any',
    validateStage: (stage, ctx) => requireVllmModel(stage, ctx),
    resolveWorker: (ctx) => vllmServeWorker(ctx, options),
    // `vllm serve` replicas speak HTTP: wait for /v1/models, then talk OpenAI completions.
    attach: async (proc, rt) => (rt.replica.worker.attach === 'http' ? attachVllmServe(proc, rt) : undefined),
    // Prefill → decode over NixlConnector: the decode request is the user's, with the prefill's kv_transfer_params.
    edgeFlow: (producer, consumer) => nixlEdgeFlow(producer, consumer),
  };
}

function requireVllmModel(stage: StageConfig, ctx: PlanContext): void {
  if (ctx.model) return;
  const message = `stage ${stage.stage_id} runs on engine "vllm", which needs a model`;
  const hint =
    'pass --model <hub id or local path>, set `model:` at the top of the file, or use --engine reference to dry-run';
  const location = ctx.config.locations.at('model');
  if (ctx.options.purpose !== 'launch') {
    // Printing a plan of an upstream file is useful before the model is chosen.
    if (stage.stage_idx === 0)
      ctx.warn(diagnostic('OMNI_WARN_MODEL_MISSING', `${message}; the plan shows <model>`, location, hint));
    return;
  }
  throw new OmniError('OMNI_CONFIG_INVALID', message, {
    location,
    context: { stage_id: stage.stage_id },
    hint,
  });
}

function vllmServeWorker(ctx: ReplicaContext, options: LlmPluginOptions): WorkerSpec {
  const env = ctx.plan.options.env ?? process.env;
  const port = vllmReplicaPort(ctx, options.vllmBasePort ?? 18100);
  // An agent's replicas bind on its host's address (--advertise), as a host of its own would.
  const host = ctx.plan.options.hostAddress ?? '127.0.0.1';
  const derived = deriveVllmServeArgv(ctx.engineArgs, {
    model: ctx.plan.model ?? '<model>',
    port,
    host,
    executable: options.vllmCommand ?? env.OMNISTAGE_VLLM_COMMAND ?? 'vllm',
    locate: (key) => ctx.stage.locations.keyAt(`engine_args.${key}`),
  });
  // Warn once per stage, not once per replica.
  if (ctx.replicaId === 0) for (const w of derived.warnings) ctx.plan.warn(w);
  const [command, ...args] = derived.argv;
  return {
    command: command!,
    args,
    env: {},
    attach: 'http',
    port,
    readiness_url: `http://${host}:${port}/v1/models`,
    group_shim: true,
  };
}

/**
 * Upstream builds every stage's engine args with the pipeline's one model (`build_engine_args_dict`
 * sets `d.model = model`, overriding a stage's own `model` key), so a `model` under a stage's engine_args silently
 * does nothing there. Same rule here, but said, at its line.
 */
function warnStageModelOverridden(stage: StageConfig, ctx: PlanContext): void {
  const own = stage.engine_args['model'];
  if (typeof own !== 'string' || own === '' || own === ctx.model) return;
  ctx.warn(
    diagnostic(
      'OMNI_WARN_STAGE_MODEL_OVERRIDDEN',
      `stage ${stage.stage_id}: engine_args.model "${own}" is not used: every stage runs the pipeline's model (${ctx.model ? `"${ctx.model}"` : 'none given yet'})`,
      stage.locations.at('engine_args.model'),
      'set `model:` at the top of the file (or --model); a stage that loads other weights of the same checkpoint names them with engine_args.model_subdir',
    ),
  );
}
