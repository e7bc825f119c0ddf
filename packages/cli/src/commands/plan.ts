import type { Logger } from 'pino';
import { planToJson, planToTable } from '@omnistage/core';
import type { CliValues } from '../args.js';
import { openSession, planSession } from '../session.js';
import { printWarnings } from './validate.js';

/** `omnistage plan FILE [--json]`: the deterministic plan, as a table or as the JSON contract. */
export async function planCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const session = await openSession(file, values, logger);
  const plan = await planSession(session);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(planToJson(plan), null, 2)}\n`);
  } else {
    process.stdout.write(`${planToTable(plan)}\n`);
    printWarnings(plan.warnings, values);
  }
  return 0;
}
