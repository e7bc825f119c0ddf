import {
  STAGE_CONNECTOR,
  definePlugin,
  diagnostic,
  type EngineArgs,
  type OmnistagePlugin,
  type PipelineConfig,
  type ReplicaContext,
} from '@omnistage/core';
import { injectKvStageInfo } from './kv-stage-info.js';
import { kvEngineArgsJsonSchema } from './kv-engine-args-schema.js';
import { allocateKvPorts, type KvPortAssignment } from './kv-ports.js';
import { resolveOmniKvConfigForStage } from './omni-kv-connector.js';
import { getStageConnectorSpec } from './stage-connector-spec.js';
import { loadOmniTransferConfig } from './transfer-config.js';
import type { OmniKvConnector, OmniTransferConfig } from './types.js';
import { isVllmKvConnector, vllmKvTransferConfig } from './vllm-kv-transfer.js';

export const KV_PLUGIN_NAME = '@omnistage/plugin-kv-connector';

export interface KvConnectorPluginOptions {
  /** First port of the per-replica KV port blocks for vLLM connectors (default 20000). */
  kvBasePort?: number;
}

interface PlanState {
  transfer: OmniTransferConfig | null;
  ports: Map<string, KvPortAssignment> | null;
}

/** Replicas the plan gives a stage (at least 1). */
function replicasOf(ctx: ReplicaContext, stageId: number): number {
  return Math.max(1, ctx.layout.find((l) => l.stage_id === stageId)?.num_replicas ?? 1);
}

function positiveInt(v: unknown): number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : 1;
}

/**
 * Transfer wiring between stages: parses connectors and edges (errors for undefined names and
 * mismatched classes, with both locations), gives each stage its connector spec and
 * `omni_kv_config` (with inferred TP topology), and derives `--kv-transfer-config` for connected
 * stages that run `vllm serve` with a vLLM-native connector.
 */
export function kvConnectorPlugin(options: KvConnectorPluginOptions = {}): OmnistagePlugin {
  const state = new WeakMap<PipelineConfig, PlanState>();
  const stateOf = (config: PipelineConfig): PlanState => {
    let s = state.get(config);
    if (!s) state.set(config, (s = { transfer: loadOmniTransferConfig(config), ports: null }));
    return s;
  };
  const basePort = options.kvBasePort ?? 20000;

  return definePlugin({
    name: KV_PLUGIN_NAME,
    apply(omni) {
      // `omni_kv_config` is valid in the engine args of every stage type.
      omni.defineSharedEngineArgsSchema(kvEngineArgsJsonSchema);
      // Parse once per plan, before any replica: a bad reference fails the plan at its YAML line.
      omni.hooks.validateConfig.tapPromise(KV_PLUGIN_NAME, async (config) => {
        stateOf(config);
      });

      omni.hooks.buildArgs.tapPromise({ name: KV_PLUGIN_NAME, stage: STAGE_CONNECTOR }, async (args, ctx) => {
        const config = ctx.plan.config;
        const s = stateOf(config);
        const stage = ctx.stage;
        let out = args;
        // Upstream: the engine-wide async_chunk flag is stage 0's; the spec lands only where the stage opts in.
        const globalAsyncChunk = Boolean(config.stages[0]?.engine_args['async_chunk']);
        if (out['async_chunk']) {
          out = { ...out, stage_connector_spec: getStageConnectorSpec(s.transfer, stage.stage_id, globalAsyncChunk) };
        }
        const connector = s.transfer ? resolveOmniKvConfigForStage(s.transfer, stage.stage_id) : null;
        out = injectKvStageInfo(out, stage, config.stages, {
          connector,
          withReceiverFallback: stage.stage_type === 'diffusion',
        });
        return connector ? withVllmKvTransfer(out, ctx, connector, () => vllmPorts(ctx, s, basePort)) : out;
      });
    },
  });
}

/** The KV port blocks of the plan's vLLM replicas, allocated once per plan. */
function vllmPorts(ctx: ReplicaContext, s: PlanState, basePort: number): Map<string, KvPortAssignment> {
  if (!s.ports) {
    // One port block per planned replica: the replica counts are the plan's (ctx.layout), not re-derived.
    s.ports = allocateKvPorts(
      ctx.plan.config.stages.flatMap((st) =>
        Array.from({ length: replicasOf(ctx, st.stage_id) }, (_, i) => ({
          stage_id: st.stage_id,
          replica_id: i,
          dp_size: positiveInt(st.engine_args['data_parallel_size']),
          tp_size:
            positiveInt(st.engine_args['tensor_parallel_size']) * positiveInt(st.engine_args['pipeline_parallel_size']),
        })),
      ),
      basePort,
    );
  }
  return s.ports;
}

/** Adds `--kv-transfer-config` (and its env) for a `vllm serve` replica on an edge with a vLLM-native connector. */
function withVllmKvTransfer(
  args: EngineArgs,
  ctx: ReplicaContext,
  [cfg, from, to]: OmniKvConnector,
  ports: () => Map<string, KvPortAssignment>,
): EngineArgs {
  const cls = typeof cfg?.['type'] === 'string' ? cfg['type'] : null;
  if (ctx.engine !== 'vllm' || !cls || !isVllmKvConnector(cls) || from === null || to === null) return args;
  const stage = ctx.stage;
  const role = cfg?.['role'] === 'receiver' ? 'receiver' : 'sender';
  const count = (id: string): number => replicasOf(ctx, Number(id));
  const senders = count(from);
  const { type: _type, role: _role, ...extra } = cfg ?? {};
  const kv = vllmKvTransferConfig({
    connector: cls,
    role,
    stageId: stage.stage_id,
    replicaId: ctx.replicaId,
    replicaIndexInEdge: role === 'sender' ? ctx.replicaId : senders + ctx.replicaId,
    kvParallelSize: senders + count(to),
    ports: ports(),
    extra,
  });
  if (!kv) return args;
  Object.assign(ctx.env, kv.env);
  if (cls !== 'NixlConnector' && role === 'sender' && ctx.replicaId === 0) {
    // The replicas get their flags, but the requests of these connectors go through a
    // proxy of their own (P2pNccl's ZMQ registry, Mooncake's bootstrap, LMCache's
    // controller); the router would send the consumer the producer's text, not a decode.
    ctx.plan.warn(
      diagnostic(
        'OMNI_WARN_KV_FLOW_NOT_DRIVEN',
        `stage ${stage.stage_id} → ${to}: omnistage configures ${cls} on both vllm stages but does not drive its prefill → decode request flow (it drives NixlConnector's); the consumer receives the producer's output as a new prompt`,
        stage.locations.at('output_connectors'),
        "use NixlConnector for prefill → decode, or put the connector's own proxy in front of the replicas",
      ),
    );
  }
  return { ...args, kv_transfer_config: kv.kvTransferConfig };
}
