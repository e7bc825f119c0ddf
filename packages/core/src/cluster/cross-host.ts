import type { InitPlan, TransferPlan } from '../planning/types.js';

/**
 * Head mode: marks every edge that touches a stage served by agents (its replicas may be anywhere)
 * as `across_hosts`, and returns those edges. Their connectors stay as planned: small payloads go
 * inline in the control messages, larger ones into the producer host's shared memory, and a
 * consumer on another host fetches them from that host's payload server over TCP (mutual TLS
 * where configured; docs/scale-out.md, "Payloads across hosts"). The head carries references only.
 */
export function markAcrossHosts(plan: InitPlan, localStages: ReadonlySet<number>): TransferPlan[] {
  // An edge its consumer's engine drives itself (`flow`, e.g. vLLM's KV transfer) is the engine's
  // business, and a plugin's connector class moves its own bytes wherever they go.
  const crossing = plan.transfers.filter(
    (t) =>
      (t.carried_by === 'shm' || t.carried_by === 'inline') && (!localStages.has(t.from) || !localStages.has(t.to)),
  );
  for (const t of crossing) t.across_hosts = true;
  return crossing;
}
