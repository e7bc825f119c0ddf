import type { Logger } from 'pino';
import { planToJson, planToTable } from '@omnistage/core';
import type { CliValues } from '../args.js';
import { planAsHead } from '../head-mode.js';
import { openSession, planSession } from '../session.js';
import { printWarnings } from './validate.js';

/** `omnistage plan FILE [--json]`: the deterministic plan, as a table or as the JSON contract. */
export async function planCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const session = await openSession(file, values, logger);
  const planned = await planSession(session);
  const head = values.head ? planAsHead(session, planned, values) : null;
  const plan = head?.plan ?? planned;
  const local = head?.local ?? null;
  if (values.json) {
    const json = planToJson(plan);
    process.stdout.write(
      `${JSON.stringify(local === null ? json : { ...json, head: { local_stages: [...local], agent_stages: plan.stages.map((s) => s.stage_id).filter((id) => !local.has(id)) } }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(`${planToTable(plan)}\n`);
    if (local !== null) {
      const remote = plan.stages.map((s) => s.stage_id).filter((id) => !local.has(id));
      process.stdout.write(
        `\nhead mode: stages run on the head: ${[...local].join(', ') || 'none'}; from agents: ${remote.join(', ') || 'none'}\n`,
      );
    }
    printWarnings(plan.warnings, values);
  }
  return 0;
}
