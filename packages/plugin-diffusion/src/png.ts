import { deflateSync } from 'node:zlib';
import { crc32 } from './crc32.js';

/** The 8 bytes every PNG file starts with. */
export const PNG_SIGNATURE: Buffer = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Encodes 8-bit RGB pixels (row-major, `width * height * 3` bytes, no padding) as a PNG: signature,
 * IHDR (colour type 2, no interlace), one zlib-compressed IDAT, IEND, each chunk with its CRC-32.
 * Every scanline uses filter type 1 ("Sub"): cheap to compute, and it turns the smooth gradients
 * of the reference renderer into small residuals that deflate well. Output is deterministic for
 * a given input and zlib build.
 */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (
    !Number.isSafeInteger(width) ||
    !Number.isSafeInteger(height) ||
    width < 1 ||
    height < 1 ||
    width > 0x7fffffff ||
    height > 0x7fffffff
  ) {
    throw new RangeError(`PNG width and height must be integers from 1 to 2^31-1, got ${width}×${height}`);
  }
  const stride = width * 3;
  if (rgb.length !== stride * height) {
    throw new RangeError(`expected ${stride * height} RGB bytes for ${width}×${height}, got ${rgb.length}`);
  }

  // Each scanline is prefixed by its filter type byte. Sub: byte - byte 3 positions to the left.
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const src = y * stride;
    const dst = y * (stride + 1);
    raw[dst] = 1;
    raw[dst + 1] = rgb[src] as number;
    raw[dst + 2] = rgb[src + 1] as number;
    raw[dst + 3] = rgb[src + 2] as number;
    for (let i = 3; i < stride; i++) {
      raw[dst + 1 + i] = ((rgb[src + i] as number) - (rgb[src + i - 3] as number)) & 0xff;
    }
  }

  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour RGB
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method: adaptive (per-line filter byte)
  ihdr[12] = 0; // no interlace

  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** length (4, big-endian) + type (4) + data + CRC-32 over type and data (4). */
function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
