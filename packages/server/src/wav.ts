import { badField } from './http-error.js';

/**
 * The samples of a RIFF/WAVE file (its `data` chunk): OpenAI's `pcm16` audio format and the
 * speech endpoint's `pcm` are the raw 16-bit little-endian samples, without the header.
 */
export function pcmOfWav(wav: Buffer): Buffer {
  if (wav.subarray(0, 4).toString('latin1') !== 'RIFF' || wav.subarray(8, 12).toString('latin1') !== 'WAVE')
    throw new Error('the audio stage did not answer a WAV file, so its samples cannot be sent as PCM');
  for (let at = 12; at + 8 <= wav.length;) {
    const id = wav.subarray(at, at + 4).toString('latin1');
    const size = wav.readUInt32LE(at + 4);
    if (id === 'data') return wav.subarray(at + 8, Math.min(wav.length, at + 8 + size));
    at += 8 + size + (size % 2);
  }
  throw new Error('the WAV file of the audio stage has no data chunk');
}

/** The audio formats a client may ask for, by the name its endpoint uses, with their content type. */
export type AudioFormat = { name: string; mime: string; pcm: boolean };

/** The format named `name` among `formats`; a 400 listing them for any other. */
export function audioFormat(name: string | undefined, formats: readonly AudioFormat[], param: string): AudioFormat {
  if (name === undefined) return formats[0]!;
  const f = formats.find((x) => x.name === name);
  if (!f)
    throw badField(
      param,
      `${param} "${name}" is not supported by this pipeline; the formats are: ${formats.map((x) => x.name).join(', ')}`,
    );
  return f;
}

/** Audio bytes of a WAV in the asked format (the WAV itself, or its raw samples). */
export function encodeAudio(wav: Buffer, format: AudioFormat): Buffer {
  return format.pcm ? pcmOfWav(wav) : wav;
}
