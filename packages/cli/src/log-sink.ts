import { write, writeSync } from 'node:fs';
import { atProcessExit } from '@omnistage/core/runtime';

/** Bytes of log lines queued at most; past it lines are dropped and counted (8 MiB). */
export const DEFAULT_LOG_QUEUE_BYTES = 8 * 1024 * 1024;
/**
 * Lines are batched into writes of at most PIPE_BUF (4 KiB; a longer line goes alone): a pipe
 * writes those atomically, so the synchronous flush at exit cannot tear a line still in flight.
 */
const CHUNK_BYTES = 4096;
/** How long an exiting CLI keeps trying to write what is still queued to a reader that is not reading. */
const EXIT_FLUSH_MS = 2_000;

/**
 * A log destination that never blocks the event loop: lines are queued (at most `maxQueuedBytes`)
 * and written by libuv's thread pool, one chunk at a time, so a slow or stalled reader of stderr
 * (a pipe to `cat`, systemd, docker) stalls only that thread. When the queue is full, lines are
 * dropped and counted, and a line saying how many is written once there is room again. At exit
 * what is left is written synchronously (for a bounded time), so the last lines of a failure are
 * not lost.
 */
export class AsyncLogSink {
  readonly #fd: number;
  readonly #max: number;
  #queue: string[] = [];
  #queuedBytes = 0;
  #writing = false;
  #dropped = 0;
  #droppedTotal = 0;

  constructor(fd: number, maxQueuedBytes: number = DEFAULT_LOG_QUEUE_BYTES) {
    this.#fd = fd;
    this.#max = maxQueuedBytes;
    // Registered when the CLI starts, before any cleanup task, so it runs first: exit tasks do not log.
    atProcessExit(() => this.flushSync());
  }

  /** Lines dropped so far because the reader fell behind. */
  get droppedLines(): number {
    return this.#droppedTotal;
  }

  /** pino's destination interface. Always true: the caller never waits. */
  write(line: string): boolean {
    if (this.#queuedBytes + line.length > this.#max) {
      this.#dropped++;
      this.#droppedTotal++;
      return true;
    }
    this.#queue.push(line);
    this.#queuedBytes += line.length;
    if (!this.#writing) this.#pump();
    return true;
  }

  /** Writes what is queued, synchronously; retries a full non-blocking pipe for a bounded time. */
  flushSync(): void {
    this.#noteDrops();
    let data = Buffer.from(this.#queue.join(''));
    this.#queue = [];
    this.#queuedBytes = 0;
    const giveUp = Date.now() + EXIT_FLUSH_MS;
    while (data.length > 0 && Date.now() < giveUp) {
      try {
        data = data.subarray(writeSync(this.#fd, data));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  }

  #noteDrops(): void {
    if (this.#dropped === 0) return;
    const note = JSON.stringify({
      level: 40,
      time: Date.now(),
      msg: `${this.#dropped} log lines dropped: stderr was not read fast enough (queue of ${this.#max} bytes full)`,
    });
    this.#dropped = 0;
    this.#queue.push(`${note}\n`);
    this.#queuedBytes += note.length + 1;
  }

  #pump(): void {
    this.#noteDrops();
    if (this.#queue.length === 0) {
      this.#writing = false;
      return;
    }
    this.#writing = true;
    let chunk = '';
    do chunk += this.#queue.shift();
    while (this.#queue.length > 0 && chunk.length + this.#queue[0]!.length <= CHUNK_BYTES);
    this.#send(Buffer.from(chunk), chunk.length);
  }

  #send(data: Buffer, queuedLength: number): void {
    write(this.#fd, data, 0, data.length, null, (err, written) => {
      if (err && err.code === 'EAGAIN') {
        // A non-blocking pipe that is full: try again shortly (the event loop stays free).
        setTimeout(() => this.#send(data, queuedLength), 1);
        return;
      }
      if (!err && written < data.length) return this.#send(data.subarray(written), queuedLength);
      // Written, or the reader is gone (EPIPE): either way these lines leave the queue.
      this.#queuedBytes -= queuedLength;
      this.#pump();
    });
  }
}
