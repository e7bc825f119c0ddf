import { StringDecoder } from 'node:string_decoder';

/**
 * Longest output line of a child kept whole (1 MiB). A replica that writes one endless line must
 * not grow the orchestrator without bound (readline buffered it all and crashed at ~512 MiB).
 */
export const MAX_CHILD_LINE_BYTES = 1024 * 1024;

/** A line cut to the cap: what was kept and how many bytes of it were dropped. */
export interface SplitLine {
  line: string;
  droppedBytes: number;
}

/**
 * Splits a child's output bytes into lines, keeping at most `maxBytes` of each: the rest of an
 * over-long line is counted and discarded as it arrives, never buffered. Works on bytes, so a
 * line's cost is bounded before it is decoded.
 */
export class CappedLineSplitter {
  readonly #max: number;
  readonly #decoder = new StringDecoder('utf8');
  #parts: Buffer[] = [];
  #kept = 0;
  #dropped = 0;

  constructor(maxBytes: number = MAX_CHILD_LINE_BYTES) {
    this.#max = maxBytes;
  }

  /** The complete lines in `chunk` (without '\n' or a trailing '\r'). */
  push(chunk: Buffer): SplitLine[] {
    const lines: SplitLine[] = [];
    let start = 0;
    let nl = chunk.indexOf(10);
    while (nl !== -1) {
      this.#take(chunk.subarray(start, nl));
      lines.push(this.#finish());
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) this.#take(chunk.subarray(start));
    return lines;
  }

  /** What is left of an unterminated last line when the stream ends, if anything. */
  end(): SplitLine | null {
    return this.#kept > 0 || this.#dropped > 0 ? this.#finish() : null;
  }

  #take(piece: Buffer): void {
    const room = this.#max - this.#kept;
    const kept = piece.length <= room ? piece : piece.subarray(0, Math.max(0, room));
    // Copied: the stream may reuse its chunk, and a small kept slice must not pin a large one.
    if (kept.length > 0) this.#parts.push(Buffer.from(kept));
    this.#kept += kept.length;
    this.#dropped += piece.length - kept.length;
  }

  #finish(): SplitLine {
    let line = this.#decoder.write(Buffer.concat(this.#parts)) + this.#decoder.end();
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const out = { line, droppedBytes: this.#dropped };
    this.#parts = [];
    this.#kept = 0;
    this.#dropped = 0;
    return out;
  }
}
