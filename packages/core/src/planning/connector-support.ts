import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { SourceLocation } from '../errors.js';
import { INLINE_CONNECTOR, SHM_CONNECTOR } from '../connectors/connector-config.js';
import type { StagePlan, TransferPlan } from './types.js';

/**
 * One warning per producer stage whose edge names a connector class but is carried inline: its
 * engine speaks omnistage's protocol and nothing implements the class for it (e.g.
 * `MooncakeStoreConnector` on the reference engine), so the worker SDK would quietly fall back to
 * inline payloads. Read off the plan's transfers, so the warning and the `transfers` table cannot
 * disagree.
 */
export function unimplementedConnectorWarnings(
  transfers: readonly TransferPlan[],
  stages: readonly StagePlan[],
  locate: (stageId: number) => SourceLocation | undefined,
): Diagnostic[] {
  const warned = new Set<number>();
  const out: Diagnostic[] = [];
  for (const t of transfers) {
    if (t.carried_by !== 'inline' || t.connector === null || t.connector === INLINE_CONNECTOR || warned.has(t.from))
      continue;
    warned.add(t.from);
    const engine = stages.find((s) => s.stage_id === t.from)?.engine ?? '?';
    out.push(
      diagnostic(
        'OMNI_WARN_CONNECTOR_UNIMPLEMENTED',
        `stage ${t.from} sends over connector "${t.connector}", which engine "${engine}" (omnistage protocol) does not implement: its payloads go inline (through shared memory above 4 MiB)`,
        locate(t.from),
        `load a plugin that defines "${t.connector}" (omni.defineConnector, see docs/plugins.md), use ${SHM_CONNECTOR}, or run the stage on an engine that implements it (e.g. engine: vllm)`,
      ),
    );
  }
  return out;
}
