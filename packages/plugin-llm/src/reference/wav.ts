/**
 * Audio for the reference engine's `engine_output_type: audio` stages (a code2wav stand-in): one
 * short tone per token, pitch from the token id, as 16-bit little-endian mono PCM (a WAV file for a
 * whole answer). Each token's samples depend on its id only, so the PCM of consecutive windows,
 * concatenated, is the PCM of the whole.
 */
export const REFERENCE_SAMPLE_RATE = 16_000;

/** The raw PCM of `tokenIds` (no header). */
export function tokensToPcm(tokenIds: readonly number[], sampleRate = REFERENCE_SAMPLE_RATE, msPerToken = 40): Buffer {
  const perToken = Math.round((sampleRate * msPerToken) / 1000);
  const buf = Buffer.alloc(tokenIds.length * perToken * 2);
  for (let t = 0; t < tokenIds.length; t++) {
    const freq = 220 + ((tokenIds[t] ?? 0) % 48) * 20;
    for (let i = 0; i < perToken; i++) {
      // A short fade in/out per tone avoids clicks between tokens.
      const env = Math.min(1, i / 80, (perToken - i) / 80);
      const v = Math.sin((2 * Math.PI * freq * i) / sampleRate) * 0.3 * env;
      buf.writeInt16LE(Math.round(v * 32767), (t * perToken + i) * 2);
    }
  }
  return buf;
}

/** A WAV file of `tokenIds` (one tone of token 0 when there are none). */
export function tokensToWav(tokenIds: readonly number[], sampleRate = REFERENCE_SAMPLE_RATE, msPerToken = 40): Buffer {
  const pcm = tokensToPcm(tokenIds.length === 0 ? [0] : tokenIds, sampleRate, msPerToken);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16); // PCM header size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([header, pcm]);
}
