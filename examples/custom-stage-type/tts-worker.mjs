// The `tts` stage's worker: attaches with the worker SDK, turns each request's text into a WAV.
import { connectToOrchestrator } from '@omnistage/core/worker';

const PITCH = { alto: 330, bass: 110, tenor: 220 };

function speak(text, voice) {
  const rate = 16000;
  const perChar = 480;
  const n = Math.max(1, text.length) * perChar;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(Math.floor(i / perChar)) || 32;
    const f = PITCH[voice] * (1 + (c % 12) / 12);
    buf.writeInt16LE(Math.round(Math.sin((2 * Math.PI * f * i) / rate) * 0.25 * 32767), 44 + i * 2);
  }
  return buf;
}

const conn = await connectToOrchestrator();
const voice = process.env.TTS_VOICE ?? 'alto';
conn.onRequest((req, stream) => {
  const input = req.input;
  const text = typeof input === 'string' ? input : (input?.text ?? JSON.stringify(input));
  stream.end({ kind: 'audio', mime: 'audio/wav', text, voice, data_base64: speak(text, voice).toString('base64') });
});
conn.ready({ engine: 'example-tts', voice });
