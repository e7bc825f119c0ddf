import type { JsonObject } from '../control/protocol.js';
import { connectToOrchestrator, type ConnectOptions, type WorkerConnection } from './connection.js';

/** Registers handlers, loads the engine, and optionally returns the `ready` info. */
export type WorkerSetup = (connection: WorkerConnection) => JsonObject | void | Promise<JsonObject | void>;

/**
 * Convenience entry point for a worker script: connect, run `setup` (register `onRequest`,
 * load the model), then send `ready` with what `setup` returned. If connecting or setup fails,
 * the error goes to stderr and the process exits 1 (with `exitProcess: false`, it rejects).
 */
export async function runWorker(setup: WorkerSetup, options: ConnectOptions = {}): Promise<WorkerConnection> {
  try {
    const connection = await connectToOrchestrator(options);
    const info = await setup(connection);
    connection.ready(info ?? undefined);
    return connection;
  } catch (err) {
    if (options.exitProcess === false) throw err;
    const e = err as { code?: unknown; message?: unknown; hint?: unknown };
    const code = typeof e.code === 'string' ? `${e.code}: ` : '';
    const hint = typeof e.hint === 'string' ? `\n  hint: ${e.hint}` : '';
    process.stderr.write(`omnistage worker failed: ${code}${String(e.message ?? err)}${hint}\n`);
    process.exit(1);
  }
}
