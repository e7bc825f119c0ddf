import { OmniError } from '@omnistage/core';
import type { EdgeFlow, StagePlan } from '@omnistage/core';
import { replicaLabel } from '@omnistage/core/runtime';

/**
 * The `kv_transfer_params` of a prefill request in vLLM's disaggregated-serving proxy protocol
 * (examples/online_serving/disaggregated_serving, toy_proxy_server.py): "prefill this prompt and
 * keep its KV blocks for a remote decode". The prefill answers with the params the decode needs.
 */
export const PREFILL_KV_TRANSFER_PARAMS: Readonly<Record<string, unknown>> = Object.freeze({
  do_remote_decode: true,
  do_remote_prefill: false,
  remote_engine_id: null,
  remote_block_ids: null,
  remote_host: null,
  remote_port: null,
});

/** Which side of a prefill → decode edge a `vllm` replica serves. */
export type DisaggregatedSide = 'prefill' | 'decode';

/** The input of a decode request: the user's original request and what its prefill answered. */
export interface DecodeInput {
  /** What the user sent to the pipeline (a prompt, token ids or chat messages). */
  readonly user_input: unknown;
  /** The prefill replica's `kv_transfer_params` (remote engine id, block ids, host, port...). */
  readonly kv_transfer_params: Record<string, unknown>;
  /**
   * The sampling params the user's request gave the prefill stage (before its `max_tokens: 1`):
   * part of the original request, so the decode request carries them too (`omnistage serve` gives
   * a request's top-level params to the first stage). The decode stage's own params win.
   */
  readonly params: Record<string, unknown>;
  /** Which prefill replica answered (for error messages). */
  readonly prefill: { stage_id: number; replica_id: number };
}

const record = (v: unknown): Record<string, unknown> | null =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;

/**
 * A replica's side of a `NixlConnector` edge, from what the KV plugin put in its engine args:
 * `kv_transfer_config.kv_connector` and the role of `omni_kv_config.connector_config` (sender =
 * prefill). Null for any other replica. Other vLLM KV connectors have request flows of their own
 * (a proxy that registers instances, a bootstrap server) that omnistage does not drive; the KV
 * plugin warns about them at plan time.
 */
export function disaggregatedSideOf(engineArgs: Readonly<Record<string, unknown>>): DisaggregatedSide | null {
  if (record(engineArgs['kv_transfer_config'])?.['kv_connector'] !== 'NixlConnector') return null;
  const role = record(record(engineArgs['omni_kv_config'])?.['connector_config'])?.['role'];
  return role === 'receiver' ? 'decode' : 'prefill';
}

/** True for the input the decode side of an edge receives from {@link decodeInputProcessor}. */
export function isDecodeInput(input: unknown): input is DecodeInput {
  const o = record(input);
  return o !== null && 'user_input' in o && record(o['kv_transfer_params']) !== null && record(o['prefill']) !== null;
}

/**
 * The edge flow of a `vllm` → `vllm` `NixlConnector` edge, asked of the decode stage's engine
 * (`EngineDefinition.edgeFlow`): the decode request is the user's original request carrying the
 * `kv_transfer_params` the prefill answered. Undefined for any other edge.
 */
export function nixlEdgeFlow(producer: StagePlan, consumer: StagePlan): EdgeFlow | undefined {
  if (producer.engine !== 'vllm' || disaggregatedSideOf(producer.template.engine_args) !== 'prefill') return undefined;
  if (disaggregatedSideOf(consumer.template.engine_args) !== 'decode') return undefined;
  return {
    description:
      'vLLM prefill → decode (NixlConnector): each prefill replica gets the user request with max_tokens 1, no streaming and ' +
      'kv_transfer_params {do_remote_decode: true}; each decode replica gets the original request with the kv_transfer_params that prefill returned; ' +
      'the user receives the decode output',
    inputProcessor: (sources, ctx): DecodeInput => {
      const source = sources[0]!;
      const kv = record(record(source.data)?.['kv_transfer_params']);
      if (kv === null) {
        // The prefill connection already refuses such an answer; this guards a custom engine in between.
        throw new OmniError(
          'OMNI_KV_TRANSFER_MISSING',
          `${replicaLabel(source)} answered request ${ctx.request_id} without kv_transfer_params, so stage ${ctx.stage.stage_id} cannot decode it`,
          {
            context: { stage_id: source.stage_id, replica_id: source.replica_id, request_id: ctx.request_id },
            hint: 'the prefill replica must run vllm serve with --kv-transfer-config naming NixlConnector (vLLM ≥ 0.9)',
          },
        );
      }
      const params = record(record(source.data)?.['request_params']) ?? {};
      return {
        user_input: ctx.userInput,
        kv_transfer_params: kv,
        params,
        prefill: { stage_id: source.stage_id, replica_id: source.replica_id },
      };
    },
  };
}
