import { closeSync, openSync, writeSync } from 'node:fs';
import type { EventBus } from './event-bus.js';

/**
 * Writes every event as one JSON object per line (`--events FILE`). Writes are synchronous so the
 * file is complete even when the process is stopped right after an event (a SIGINT teardown, a
 * crash): an observer must never lose the last, most interesting lines.
 */
export function writeEventsAsJsonLines(bus: EventBus, file: string): () => void {
  const fd = openSync(file, 'a');
  let closed = false;
  const off = bus.onAny((event) => {
    if (!closed) writeSync(fd, `${JSON.stringify(event)}\n`);
  });
  return () => {
    if (closed) return;
    closed = true;
    off();
    closeSync(fd);
  };
}
