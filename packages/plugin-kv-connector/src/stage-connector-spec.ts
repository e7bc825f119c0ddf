import type { ConnectorSpec } from '@omnistage/core';
import type { OmniTransferConfig } from './types.js';

/** One entry of a stage's connector view: the edge's spec with this stage's role in `extra.role`. */
export interface StageConnectorEntry {
  spec: ConnectorSpec;
}

/**
 * The connectors one stage takes part in (upstream `get_connectors_config_for_stage`): for every
 * incoming edge `from_stage_<src>` with `role: receiver`, and — for stage 0 only — every outgoing
 * edge `to_stage_<dst>` with `role: sender`, in edge insertion order. A role already written in
 * the connector's `extra` is kept. Other stages' outgoing edges are left out on purpose: upstream
 * instantiates connectors on the receiving side, and stage 0 needs its outgoing spec only for
 * async-chunk streaming.
 */
export function getStageConnectorsConfig(
  transfer: OmniTransferConfig | null,
  stageId: number | string,
): Record<string, StageConnectorEntry> {
  const view: Record<string, StageConnectorEntry> = {};
  if (transfer === null) return view;
  const self = String(stageId);
  for (const edge of transfer.edges.values()) {
    if (edge.to === self) {
      view[`from_stage_${edge.from}`] = { spec: withRole(edge.spec, 'receiver') };
    } else if (edge.from === self && self === '0') {
      view[`to_stage_${edge.to}`] = { spec: withRole(edge.spec, 'sender') };
    }
  }
  return view;
}

/**
 * The connector spec `{name, extra}` a stage gets as `stage_connector_spec` (upstream `get_stage_connector_spec`): `{}` when
 * async chunking is off or there is no transfer config, else the first entry of
 * {@link getStageConnectorsConfig} — the first incoming edge, or for stage 0 also its first
 * outgoing edge (role `sender`), whichever was declared first. `{}` when the stage has none.
 * Always a fresh object.
 */
export function getStageConnectorSpec(
  transfer: OmniTransferConfig | null,
  stageId: number | string,
  asyncChunk: boolean,
): Record<string, unknown> {
  if (!asyncChunk || transfer === null) return {};
  const first = Object.values(getStageConnectorsConfig(transfer, stageId))[0];
  return first === undefined ? {} : { name: first.spec.name, extra: { ...first.spec.extra } };
}

function withRole(spec: ConnectorSpec, role: 'sender' | 'receiver'): ConnectorSpec {
  // setdefault semantics: an explicit `role` key (even null) in the YAML wins.
  const extra = { ...spec.extra };
  if (!Object.hasOwn(extra, 'role')) extra.role = role;
  return { name: spec.name, extra };
}
