import { compareStageIds } from './stage-ids.js';
import type { OmniKvConnector, OmniTransferConfig, TransferEdge } from './types.js';

/**
 * The KV connector a stage's engine is configured with (upstream
 * `resolve_omni_kv_config_for_stage`): if the stage has outgoing edges, the one to the smallest
 * target (numeric order for numeric ids, so 9 before 10) with `role: sender`; else the incoming edge
 * from the smallest source with `role: receiver`; else `[null, null, null]`.
 *
 * The config is `{type: <class>, ...extra, role}` — like upstream, a `type` key in `extra`
 * overrides the class and a `role` in `extra` is kept. Returns `[config, from, to]` with stage ids
 * as strings; the config is a fresh object.
 */
export function resolveOmniKvConfigForStage(
  transfer: OmniTransferConfig | null,
  stageId: number | string,
): OmniKvConnector {
  if (transfer === null || transfer.edges.size === 0) return [null, null, null];
  const self = String(stageId);
  const all = [...transfer.edges.values()];
  // Array.prototype.sort is stable, like Python's: equal ids keep insertion order.
  const outgoing = all.filter((e) => e.from === self).sort((a, b) => compareStageIds(a.to, b.to));
  const sending = outgoing[0];
  if (sending !== undefined) return [connectorConfig(sending, 'sender'), self, sending.to];
  const incoming = all.filter((e) => e.to === self).sort((a, b) => compareStageIds(a.from, b.from));
  const receiving = incoming[0];
  if (receiving !== undefined) return [connectorConfig(receiving, 'receiver'), receiving.from, self];
  return [null, null, null];
}

function connectorConfig(edge: TransferEdge, role: 'sender' | 'receiver'): Record<string, unknown> {
  const config: Record<string, unknown> = { type: edge.spec.name, ...edge.spec.extra };
  if (!Object.hasOwn(config, 'role')) config.role = role;
  return config;
}
