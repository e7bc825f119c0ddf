import { connectorConfigOf, INLINE_CONNECTOR } from '../connectors/connector-config.js';
import type { InitPlan, TransferPlan } from '../planning/types.js';

/**
 * Head mode: shared memory works only within a host, so every edge that touches a stage served by
 * agents (its replicas may be anywhere) carries its payloads inline over the control channel. The
 * producers of such edges are switched to the inline connector (remote replicas get the head's
 * plan in their welcome, so theirs too) and the plan's transfers say so. Returns the edges changed.
 * Payloads above the inline cap (4 MiB) still need shared memory and fail across hosts, naming the key.
 */
export function carryAcrossHostsInline(plan: InitPlan, localStages: ReadonlySet<number>): TransferPlan[] {
  // An edge its consumer's engine drives itself (`flow`, e.g. vLLM's KV transfer) is the engine's business.
  const crossing = plan.transfers.filter(
    (t) => t.carried_by !== 'engine' && (!localStages.has(t.from) || !localStages.has(t.to)),
  );
  const producers = new Set(crossing.map((t) => t.from));
  for (const stage of plan.stages) {
    if (!producers.has(stage.stage_id)) continue;
    for (const replica of stage.replicas) {
      const config = connectorConfigOf(replica.engine_args);
      if (config === undefined) continue;
      const kv = replica.engine_args['omni_kv_config'] as Record<string, unknown>;
      replica.engine_args = {
        ...replica.engine_args,
        omni_kv_config: { ...kv, connector_config: { ...config, type: INLINE_CONNECTOR } },
      };
    }
  }
  for (const t of crossing) {
    t.carried_by = 'inline';
    t.connector = INLINE_CONNECTOR;
    delete t.threshold_bytes;
    t.across_hosts = true;
  }
  return crossing;
}
