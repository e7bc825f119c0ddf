import { PNG_SIGNATURE } from './png.js';

/**
 * Width and height of a PNG, read from its IHDR chunk (which must come first). Checks only the
 * signature and the chunk type — enough to tell what an engine returned, not a full validator.
 */
export function decodePngSize(buf: Uint8Array): { width: number; height: number } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 24 || !b.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG: the signature is missing');
  if (b.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a valid PNG: the first chunk is not IHDR');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}
