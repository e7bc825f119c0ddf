/**
 * Audio for the reference engine's `engine_output_type: audio` stages (a code2wav stand-in): one
 * short tone per token, pitch from the token id, as a 16-bit mono PCM WAV file.
 */
export function tokensToWav(tokenIds: readonly number[], sampleRate = 16_000, msPerToken = 40): Buffer {
  const perToken = Math.round((sampleRate * msPerToken) / 1000);
  const samples = Math.max(1, tokenIds.length) * perToken;
  const buf = Buffer.alloc(44 + samples * 2);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + samples * 2, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16); // PCM header size
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(sampleRate, 24);
  buf.writeUInt32LE(sampleRate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(samples * 2, 40);
  for (let t = 0; t < Math.max(1, tokenIds.length); t++) {
    const freq = 220 + ((tokenIds[t] ?? 0) % 48) * 20;
    for (let i = 0; i < perToken; i++) {
      // A short fade in/out per tone avoids clicks between tokens.
      const env = Math.min(1, i / 80, (perToken - i) / 80);
      const v = Math.sin((2 * Math.PI * freq * i) / sampleRate) * 0.3 * env;
      buf.writeInt16LE(Math.round(v * 32767), 44 + (t * perToken + i) * 2);
    }
  }
  return buf;
}
