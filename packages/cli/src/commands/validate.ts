import type { Logger } from 'pino';
import { formatLocation, type Diagnostic } from '@omnistage/core';
import type { CliValues } from '../args.js';
import { openSession, planSession } from '../session.js';

export function formatWarning(w: Diagnostic): string {
  const where =
    w.file && w.line !== null && w.col !== null
      ? `${formatLocation({ file: w.file, line: w.line, col: w.col })}: `
      : '';
  return `${where}warning ${w.code}: ${w.message}${w.hint ? `\n  hint: ${w.hint}` : ''}`;
}

/** Plan warnings on stderr, unless `--log-level error` (or quieter) asked for errors only. */
export function printWarnings(warnings: readonly Diagnostic[], values: CliValues): void {
  if (values['log-level'] === 'error' || values['log-level'] === 'fatal' || values['log-level'] === 'silent') return;
  for (const w of warnings) process.stderr.write(`${formatWarning(w)}\n`);
}

/** `omnistage validate FILE`: load, validate and plan (nothing starts). Exit 0 when valid. */
export async function validateCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const session = await openSession(file, values, logger);
  const plan = await planSession(session);
  printWarnings(plan.warnings, values);
  const replicas = plan.stages.reduce((n, s) => n + s.replicas.length, 0);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ valid: true, file: session.config.file, stages: plan.stages.length, replicas, warnings: plan.warnings })}\n`,
    );
  } else {
    process.stdout.write(
      `${session.config.file}: valid (${session.config.schema} schema, ${plan.stages.length} stage(s), ${replicas} replica(s), ${plan.warnings.length} warning(s))\n`,
    );
  }
  return 0;
}
