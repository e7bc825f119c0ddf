import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { OmniError } from '@omnistage/core';
import { AsyncLogSink } from './log-sink.js';
import { writeAboveRegion } from './tty-region.js';

function aboveRegion(): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      writeAboveRegion(process.stderr, chunk.toString());
      done();
    },
  });
}

/**
 * `--log-format`: `pretty` (plain lines, coloured on a terminal) unless `json` is asked for, so a
 * pipe or file gets one format on stderr, not status lines mixed with JSON records.
 */
export function logFormat(format: string | undefined): string {
  return format ?? 'pretty';
}

/**
 * Where logs go off a terminal (a pipe, a file, a socket): through {@link AsyncLogSink}, so a slow
 * reader of stderr can never stall serving — a replica logging 50 MiB into `2>&1 | cat` once took
 * 98 s and froze the event loop for seconds at a time. A terminal is written synchronously (a
 * person reads it, and it keeps up).
 */
function offTerminal(): DestinationStream {
  return new AsyncLogSink(2);
}

/** pino-pretty pipes into a Node stream; the sink is a plain destination. */
function asStream(sink: DestinationStream): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      sink.write(chunk.toString());
      done();
    },
  });
}

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
  const fmt = logFormat(format);
  if (fmt === 'json') {
    // `pid` is the orchestrator's; a record about a replica names its process `replica_pid`, so no
    // JSON line carries the same key twice.
    const log = ({ pid, ...rest }: Record<string, unknown>): Record<string, unknown> =>
      pid === undefined ? rest : { ...rest, replica_pid: pid };
    return pino(
      { level: lvl, base: { pid: process.pid }, formatters: { log } },
      process.stderr.isTTY ? pino.destination({ dest: 2, sync: true }) : offTerminal(),
    );
  }
  if (fmt === 'pretty') {
    // One line per record: a replica's output line is `[stage S/R] text`, not the text plus the fields it already names.
    return pino(
      { level: lvl },
      pretty({
        // Through the status region on a terminal, so a log line never lands inside the table.
        destination: process.stderr.isTTY ? aboveRegion() : asStream(offTerminal()),
        sync: true,
        colorize: process.stderr.isTTY,
        singleLine: true,
        ignore: 'pid,hostname,stage,replica,stream,time,code',
        // A function, not a template: `{if stage}` is false for stage 0. A coded record (every
        // warning) reads like an error line: `CODE: message`.
        messageFormat: (log, key) =>
          `${log['stage'] === undefined ? '' : `[stage ${String(log['stage'])}/${String(log['replica'])}] `}` +
          `${log['code'] === undefined ? '' : `${String(log['code'])}: `}${String(log[key])}`,
      }),
    );
  }
  throw new OmniError('OMNI_USAGE', `--log-format must be "pretty" or "json", got "${fmt}"`);
}
