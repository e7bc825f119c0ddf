import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { OmniError } from '@omnistage/core';

/**
 * The CLI's logger, on stderr so stdout stays clean for `--json` outputs. Pretty mode uses
 * pino-pretty as a synchronous stream, not a transport: transports run in worker threads and lose
 * the last lines when the CLI exits right after a failure.
 */
export function createCliLogger(format: string | undefined, level: string | undefined): Logger {
  const lvl = level ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(lvl)) {
    throw new OmniError('OMNI_USAGE', `--log-level must be one of trace, debug, info, warn, error, got "${lvl}"`);
  }
  const fmt = format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  if (fmt === 'json') return pino({ level: lvl, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
  if (fmt === 'pretty') {
    return pino(
      { level: lvl },
      pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, ignore: 'pid,hostname', messageFormat: '{if stage}[stage {stage}/{replica}] {end}{msg}' }),
    );
  }
  throw new OmniError('OMNI_USAGE', `--log-format must be "pretty" or "json", got "${fmt}"`);
}
