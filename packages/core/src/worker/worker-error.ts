/**
 * How the worker SDK reports what goes wrong: protocol errors, and failures of a plugin's
 * connector class said to come from it.
 *
 * Imported by the worker SDK: node built-ins only.
 */
import { OmniError } from '../errors.js';

/** A protocol or usage error of the worker SDK. */
export function workerError(message: string, hint = 'see docs/protocol.md'): OmniError {
  return new OmniError('OMNI_PROTOCOL', message, { hint });
}

/** Runs a plugin connector's method; what it throws is said to come from it. */
export async function attributed<T>(call: () => T | Promise<T>, what: string): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new OmniError('OMNI_REQUEST_FAILED', `${what}: ${messageOf(err)}`, {
      cause: err,
      hint: 'the plugin that defines the connector failed; see its documentation',
    });
  }
}

/** The message of whatever was thrown. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
