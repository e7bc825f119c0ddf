import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { SourceLocation } from '../errors.js';
import { connectorConfigOf, INLINE_CONNECTOR, SHM_CONNECTOR } from '../connectors/connector-config.js';
import type { ReplicaPlan } from './types.js';

/**
 * One warning per stage whose engine speaks omnistage's protocol and sends over a connector class
 * nothing implements for such engines (e.g. `MooncakeStoreConnector` on the reference engine): the
 * worker SDK would quietly fall back to inline payloads, so the plan says so. Engines that attach
 * over HTTP (vLLM) implement their classes themselves and are not checked.
 */
export function unimplementedConnectorWarnings(
  replicas: readonly ReplicaPlan[],
  pluginClasses: ReadonlySet<string>,
  locate: (stageId: number) => SourceLocation | undefined,
): Diagnostic[] {
  const warned = new Set<number>();
  const out: Diagnostic[] = [];
  for (const r of replicas) {
    if (r.worker.attach !== 'control' || warned.has(r.stage_id)) continue;
    const c = connectorConfigOf(r.engine_args);
    const type = c?.['type'];
    if (typeof type !== 'string' || c?.['role'] === 'receiver') continue;
    if (type === SHM_CONNECTOR || type === INLINE_CONNECTOR || pluginClasses.has(type)) continue;
    warned.add(r.stage_id);
    out.push(
      diagnostic(
        'OMNI_WARN_CONNECTOR_UNIMPLEMENTED',
        `stage ${r.stage_id} sends over connector "${type}", which engine "${r.engine}" (omnistage protocol) does not implement: its payloads go inline (through shared memory above 4 MiB)`,
        locate(r.stage_id),
        `load a plugin that defines "${type}" (omni.defineConnector, see docs/plugins.md), use ${SHM_CONNECTOR}, or run the stage on an engine that implements it (e.g. engine: vllm)`,
      ),
    );
  }
  return out;
}
