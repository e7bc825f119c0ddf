import { deepFreeze } from '../planning/deep-freeze.js';
import type { InitPlan, TransferPlan } from '../planning/types.js';

/** A head's plan: the edges that may cross hosts marked, and which edges those are. */
export interface CrossHostPlan {
  readonly plan: InitPlan;
  /** The edges marked `across_hosts` (as they now are in `plan.transfers`). */
  readonly crossing: readonly TransferPlan[];
}

/**
 * Head mode: marks every edge that touches a stage served by agents (its replicas may be anywhere)
 * as `across_hosts`, in a plan derived from `plan` (frozen, as every plan; `plan` is left as it
 * was), and returns it with those edges. Their connectors stay as planned: small payloads go
 * inline in the control messages, larger ones into the producer host's shared memory, and a
 * consumer on another host fetches them from that host's payload server over TCP (mutual TLS
 * where configured; docs/scale-out.md, "Payloads across hosts"). The head carries references only.
 */
export function markAcrossHosts(plan: InitPlan, localStages: ReadonlySet<number>): CrossHostPlan {
  // An edge its consumer's engine drives itself (`flow`, e.g. vLLM's KV transfer) is the engine's
  // business, and a plugin's connector class moves its own bytes wherever they go.
  const crosses = (t: TransferPlan): boolean =>
    (t.carried_by === 'shm' || t.carried_by === 'inline') && (!localStages.has(t.from) || !localStages.has(t.to));
  const crossing: TransferPlan[] = [];
  const transfers = plan.transfers.map((t): TransferPlan => {
    if (!crosses(t)) return t;
    const marked: TransferPlan = { ...t, across_hosts: true };
    crossing.push(marked);
    return marked;
  });
  return { plan: deepFreeze({ ...plan, transfers }), crossing };
}
