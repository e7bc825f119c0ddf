import { connectorConfigOf, outputConnectorOf, SHM_CONNECTOR } from '../connectors/connector-config.js';
import type { StagePlan, TransferPlan } from './types.js';

/**
 * How each `engine_input_source` edge carries data, from the producer's connector config and how
 * its engine attaches, both read off its template replica (see {@link TransferPlan}). The same rules
 * the worker SDK applies at run time (`outputConnectorOf`), so the plan says what will happen, not
 * what the YAML asked for.
 */
export function stageTransfers(stages: readonly StagePlan[], pluginClasses: ReadonlySet<string>): TransferPlan[] {
  const byId = new Map(stages.map((s) => [s.stage_id, s]));
  const out: TransferPlan[] = [];
  for (const consumer of stages) {
    for (const from of consumer.stage.engine_input_source) {
      const producer = byId.get(from)?.template;
      if (producer === undefined) continue;
      const config = connectorConfigOf(producer.engine_args);
      const declared = typeof config?.['type'] === 'string' && config['role'] !== 'receiver' ? config['type'] : null;
      out.push({
        from,
        to: consumer.stage_id,
        connector: declared,
        ...carriage(producer.worker.attach, producer.engine_args, declared, pluginClasses),
      });
    }
  }
  return out;
}

function carriage(
  attach: 'control' | 'http',
  engineArgs: Readonly<Record<string, unknown>>,
  declared: string | null,
  pluginClasses: ReadonlySet<string>,
): Pick<TransferPlan, 'carried_by' | 'threshold_bytes'> {
  if (attach === 'http') return { carried_by: declared === null ? 'inline' : 'engine' };
  const c = outputConnectorOf(engineArgs, pluginClasses);
  if (c.plugin) return { carried_by: 'plugin' };
  if (c.type === SHM_CONNECTOR) return { carried_by: 'shm', threshold_bytes: c.shmThresholdBytes };
  return { carried_by: 'inline' };
}
