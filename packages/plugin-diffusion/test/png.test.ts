import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../src/crc32.js';
import { PNG_SIGNATURE, encodePng } from '../src/png.js';
import { decodePngSize } from '../src/png-size.js';
import { readPng } from './png-reader.js';

function gradient(width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      rgb[o] = (x * 37) & 0xff;
      rgb[o + 1] = (y * 53) & 0xff;
      rgb[o + 2] = (x * y + 200) & 0xff; // wraps, so Sub-filter residuals wrap too
    }
  }
  return rgb;
}

describe('crc32', () => {
  it('matches the standard check value and zlib', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const data = gradient(17, 5);
    expect(crc32(data)).toBe(zlibCrc32(data));
    expect(crc32(data.subarray(100), crc32(data.subarray(0, 100)))).toBe(zlibCrc32(data));
  });
});

describe('encodePng', () => {
  it('writes a valid PNG: signature, IHDR, IDAT, IEND, correct CRCs, filtered scanlines', () => {
    const width = 13;
    const height = 7;
    const rgb = gradient(width, height);
    const png = encodePng(width, height, rgb);

    expect(png.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const { chunks, raw, pixels, width: w, height: h } = readPng(png); // checks every CRC
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect([w, h]).toEqual([width, height]);
    expect(chunks[0]?.data.readUInt32BE(0)).toBe(width);
    expect(chunks[0]?.data.readUInt32BE(4)).toBe(height);
    expect(raw.length).toBe(height * (1 + 3 * width));
    expect(pixels).toEqual(rgb); // round trip through inflate + unfilter
    expect(chunks.at(-1)?.data.length).toBe(0);
  });

  it('handles one-pixel images', () => {
    const png = encodePng(1, 1, new Uint8Array([1, 2, 3]));
    expect(readPng(png).pixels).toEqual(new Uint8Array([1, 2, 3]));
  });

  it('rejects a pixel buffer of the wrong size and bad dimensions', () => {
    expect(() => encodePng(2, 2, new Uint8Array(11))).toThrow(/expected 12 RGB bytes/);
    expect(() => encodePng(0, 2, new Uint8Array(0))).toThrow(RangeError);
    expect(() => encodePng(2.5, 2, new Uint8Array(15))).toThrow(RangeError);
  });

  it('detects a corrupted CRC (the reader used by the tests is not lenient)', () => {
    const png = encodePng(4, 4, gradient(4, 4));
    png[png.length - 20] = (png[png.length - 20] ?? 0) ^ 0xff; // inside IDAT data
    expect(() => readPng(png)).toThrow(/bad CRC/);
  });
});

describe('decodePngSize', () => {
  it('reads width and height from IHDR', () => {
    expect(decodePngSize(encodePng(300, 2, new Uint8Array(300 * 2 * 3)))).toEqual({ width: 300, height: 2 });
    expect(decodePngSize(new Uint8Array(encodePng(5, 9, new Uint8Array(5 * 9 * 3))))).toEqual({ width: 5, height: 9 });
  });

  it('rejects data that is not a PNG', () => {
    expect(() => decodePngSize(Buffer.from('GIF89a................................'))).toThrow(/signature/);
    expect(() => decodePngSize(Buffer.alloc(4))).toThrow(/signature/);
  });
});
