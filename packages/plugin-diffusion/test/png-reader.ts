import { crc32 as zlibCrc32, inflateSync } from 'node:zlib';

/** One PNG chunk as read from the file. */
export interface PngChunk {
  type: string;
  data: Buffer;
  crc: number;
}

/**
 * A minimal, independent PNG reader for tests (8-bit RGB only): checks the signature and every
 * chunk's CRC with `zlib.crc32` (not the encoder's own CRC code), inflates the IDAT stream and
 * reverses all five scanline filters, so the encoder's filter choice can change without the tests.
 */
export function readPng(buf: Buffer): {
  width: number;
  height: number;
  chunks: PngChunk[];
  raw: Buffer;
  pixels: Uint8Array;
} {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!buf.subarray(0, 8).equals(signature)) throw new Error('bad PNG signature');
  const chunks: PngChunk[] = [];
  let off = 8;
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    const crc = buf.readUInt32BE(off + 8 + len);
    const expected = zlibCrc32(buf.subarray(off + 4, off + 8 + len));
    if (crc !== expected) throw new Error(`bad CRC in ${type}: ${crc.toString(16)} != ${expected.toString(16)}`);
    chunks.push({ type, data, crc });
    off += 12 + len;
  }
  const ihdr = chunks[0];
  if (ihdr?.type !== 'IHDR' || ihdr.data.length !== 13) throw new Error('first chunk is not a 13-byte IHDR');
  if (chunks.at(-1)?.type !== 'IEND') throw new Error('last chunk is not IEND');
  const width = ihdr.data.readUInt32BE(0);
  const height = ihdr.data.readUInt32BE(4);
  if (ihdr.data[8] !== 8 || ihdr.data[9] !== 2 || ihdr.data[12] !== 0)
    throw new Error('test reader handles 8-bit RGB, non-interlaced only');

  const raw = inflateSync(Buffer.concat(chunks.filter((c) => c.type === 'IDAT').map((c) => c.data)));
  const stride = width * 3;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let i = 0; i < stride; i++) {
      const v = raw[y * (stride + 1) + 1 + i] ?? 0;
      const a = i >= 3 ? (pixels[y * stride + i - 3] ?? 0) : 0;
      const b = y > 0 ? (pixels[(y - 1) * stride + i] ?? 0) : 0;
      const c = i >= 3 && y > 0 ? (pixels[(y - 1) * stride + i - 3] ?? 0) : 0;
      let pred: number;
      switch (filter) {
        case 0:
          pred = 0;
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = b;
          break;
        case 3:
          pred = (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`bad filter type ${String(filter)} on row ${y}`);
      }
      pixels[y * stride + i] = (v + pred) & 0xff;
    }
  }
  return { width, height, chunks, raw, pixels };
}

/** Mean absolute difference of two equally sized byte arrays, in 0..255. */
export function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error('size mismatch');
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}
