import { StringDecoder } from 'node:string_decoder';
import { OmniError } from '../errors.js';

/** Default cap on one protocol line. Bulk data travels through connectors, not the control socket. */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024;

/**
 * Splits a byte stream into lines: handles chunks that end mid-line (or mid UTF-8 character)
 * and chunks holding several lines. A line longer than `maxLineBytes` (counted in UTF-16 code
 * units, an upper bound that is cheap to keep) throws OMNI_PROTOCOL and the decoder must be
 * dropped with its connection. Empty lines are skipped.
 */
export class LineDecoder {
  readonly #decoder = new StringDecoder('utf8');
  readonly #max: number;
  #partial = '';

  constructor(maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {
    this.#max = maxLineBytes;
  }

  /** Returns the complete lines in `chunk` (without '\n' or a trailing '\r'). */
  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    const lines: string[] = [];
    let start = 0;
    let nl = text.indexOf('\n');
    while (nl !== -1) {
      const piece = this.#partial + text.slice(start, nl);
      this.#partial = '';
      this.#checkLength(piece.length);
      const line = piece.endsWith('\r') ? piece.slice(0, -1) : piece;
      if (line.length > 0) lines.push(line);
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    this.#partial += text.slice(start);
    this.#checkLength(this.#partial.length);
    return lines;
  }

  /** Bytes of an unterminated last line, if any (a peer that closed mid-message). */
  get pending(): number {
    return this.#partial.length;
  }

  #checkLength(length: number): void {
    if (length <= this.#max) return;
    this.#partial = '';
    throw new OmniError('OMNI_PROTOCOL', `a control message is longer than ${this.#max} bytes`, {
      hint: 'send large payloads through a connector (shared memory) and pass a reference in the message',
    });
  }
}
