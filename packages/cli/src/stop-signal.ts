import { constants } from 'node:os';

let received: NodeJS.Signals | null = null;

/** Remembers the first SIGINT/SIGTERM that stopped the command (its handler tears down first). */
export function noteStopSignal(signal: NodeJS.Signals): void {
  received ??= signal;
}

/**
 * The exit status of a command a signal stopped: 128 + the signal number (130 for Ctrl-C, 143 for
 * SIGTERM), as a shell reports a process the signal ended; npm passes it on, so `npx omnistage`
 * ends with the same status however the signal reached the CLI (docs/operations.md).
 * Null when no signal stopped the command.
 */
export function stopSignalStatus(): number | null {
  return received === null ? null : 128 + constants.signals[received];
}

/**
 * A stop the command completed as asked (serve drained every request in time) is a success, not an
 * interruption: exit 0, which is what service managers (systemd, Kubernetes) read as a clean stop.
 */
export function forgetStopSignal(): void {
  received = null;
}
