import { createHash } from 'node:crypto';

/** 128 bits of seed material as four unsigned 32-bit words. */
export type SeedWords = readonly [number, number, number, number];

/**
 * Seed words from arbitrary parts (strings, byte arrays, integers), via SHA-256. Parts are
 * length-prefixed so `("ab","c")` and `("a","bc")` differ; integers are written as 64-bit so
 * negative and large seeds (up to 2^53) are distinct.
 */
export function seedWords(...parts: readonly (string | Uint8Array | number)[]): SeedWords {
  const h = createHash('sha256');
  for (const part of parts) {
    let bytes: Uint8Array;
    if (typeof part === 'string') bytes = Buffer.from(`s${part}`, 'utf8');
    else if (typeof part === 'number') {
      const b = Buffer.alloc(9);
      b[0] = 0x6e; // 'n'
      b.writeBigInt64LE(BigInt(Math.trunc(part)), 1);
      bytes = b;
    } else bytes = Buffer.concat([Buffer.from('b'), part]);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(bytes.length, 0);
    h.update(len);
    h.update(bytes);
  }
  const d = h.digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4), d.readUInt32LE(8), d.readUInt32LE(12)];
}

/**
 * A small, fast, seedable PRNG (sfc32) returning floats in [0, 1). Not cryptographic; chosen
 * because it is deterministic across platforms (pure 32-bit integer arithmetic) and cheap enough
 * to call millions of times per image.
 */
export function createRandom(seed: SeedWords): () => number {
  // State lives in an Int32Array: plain `let` words above 2^30 would be boxed as heap numbers on
  // every update, and the allocation churn would dominate noise generation.
  const s = Int32Array.from(seed, (word) => word | 0);
  const next = (): number => {
    const a = s[0] as number;
    const b = s[1] as number;
    const c = s[2] as number;
    const d = s[3] as number;
    const t = (((a + b) | 0) + d) | 0;
    s[3] = (d + 1) | 0;
    s[0] = b ^ (b >>> 9);
    s[1] = (c + (c << 3)) | 0;
    s[2] = (((c << 21) | (c >>> 11)) + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // The first outputs of sfc32 still correlate with the seed words; discard them.
  for (let i = 0; i < 12; i++) next();
  return next;
}
