import { inlinePayloadRef, type PayloadRef } from '@omnistage/core';
import { badField } from './http-error.js';
import type { ChatCompletionRequest } from './schemas.js';

/**
 * What stage 0 receives for a chat request: vLLM's prompt shape. `prompt` is the conversation as
 * text (one `role: text` line per message, `<image>`/`<audio>` where media was); `messages` keeps
 * the structure for engines that apply their own chat template; the media bytes travel once, as
 * inline payload references in `multi_modal_data` (the worker SDK's `getPayload` reads them).
 */
export interface ChatStageInput {
  prompt: string;
  messages: { role: string; content: string }[];
  multi_modal_data?: { image?: PayloadRef[]; audio?: PayloadRef[] };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const AUDIO_FORMATS: Record<string, string> = { wav: 'audio/wav', mp3: 'audio/mpeg' };

function decodeBase64(text: string, param: string): Buffer {
  if (text.length % 4 !== 0 || !BASE64.test(text)) throw badField(param, `${param} is not valid base64`);
  return Buffer.from(text, 'base64');
}

/** `data:<mime>;base64,<data>` → bytes and mime. Remote URLs are refused: the server fetches nothing. */
function decodeDataUrl(url: string, param: string): { bytes: Buffer; mime: string } {
  const m = /^data:([\w.+-]+\/[\w.+-]+);base64,(.*)$/s.exec(url);
  if (!m) {
    throw badField(
      param,
      `${param} must be a data URL (data:image/png;base64,...); the server does not fetch remote URLs`,
    );
  }
  return { mime: m[1]!, bytes: decodeBase64(m[2]!, param) };
}

function object(v: unknown, param: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badField(param, `${param} must be an object`);
  return v as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], param: string): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k))
      throw badField(`${param}.${k}`, `unknown field "${k}" in ${param} (allowed: ${allowed.join(', ')})`);
}

function stringField(o: Record<string, unknown>, key: string, param: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw badField(`${param}.${key}`, `${param}.${key} must be a string`);
  return v;
}

/** Builds stage 0's input from the chat messages; every malformed part is a 400 naming it. */
export function chatStageInput(body: ChatCompletionRequest): ChatStageInput {
  const images: PayloadRef[] = [];
  const audio: PayloadRef[] = [];
  const messages = body.messages.map((m, i) => {
    const content = m.content ?? '';
    if (typeof content === 'string') return { role: m.role, content };
    const pieces = content.map((raw, j) => {
      const param = `messages[${i}].content[${j}]`;
      const part = object(raw, param);
      const type = part['type'];
      if (type === 'text') {
        onlyKeys(part, ['type', 'text'], param);
        return stringField(part, 'text', param);
      }
      if (type === 'image_url') {
        onlyKeys(part, ['type', 'image_url'], param);
        const img = object(part['image_url'], `${param}.image_url`);
        onlyKeys(img, ['url', 'detail'], `${param}.image_url`);
        const { bytes, mime } = decodeDataUrl(stringField(img, 'url', `${param}.image_url`), `${param}.image_url.url`);
        if (!mime.startsWith('image/'))
          throw badField(`${param}.image_url.url`, `${param}.image_url.url is ${mime}, not an image`);
        images.push(inlinePayloadRef(bytes, { mime }));
        return '<image>';
      }
      if (type === 'input_audio') {
        onlyKeys(part, ['type', 'input_audio'], param);
        const a = object(part['input_audio'], `${param}.input_audio`);
        onlyKeys(a, ['data', 'format'], `${param}.input_audio`);
        const format = stringField(a, 'format', `${param}.input_audio`);
        const mime = AUDIO_FORMATS[format];
        if (!mime)
          throw badField(
            `${param}.input_audio.format`,
            `${param}.input_audio.format must be one of ${Object.keys(AUDIO_FORMATS).join(', ')}`,
          );
        audio.push(
          inlinePayloadRef(decodeBase64(stringField(a, 'data', `${param}.input_audio`), `${param}.input_audio.data`), {
            mime,
          }),
        );
        return '<audio>';
      }
      throw badField(`${param}.type`, `${param}.type must be one of text, image_url, input_audio`);
    });
    return { role: m.role, content: pieces.join('') };
  });
  const media = { ...(images.length > 0 ? { image: images } : {}), ...(audio.length > 0 ? { audio } : {}) };
  return {
    prompt: messages.map((m) => `${m.role}: ${m.content}`).join('\n'),
    messages,
    ...(Object.keys(media).length > 0 ? { multi_modal_data: media } : {}),
  };
}
