import type { PayloadRef } from '@omnistage/core';
import { isPayloadRef } from '@omnistage/core/runtime';

/** One message of an OpenAI / vLLM chat request (`content` a string or a list of parts). */
export interface ChatMessage {
  role: string;
  content: string | Record<string, unknown>[];
}

/** Audio formats OpenAI's `input_audio` names, by mime type. */
const AUDIO_FORMAT: Readonly<Record<string, string>> = {
  'audio/wav': 'wav',
  'audio/x-wav': 'wav',
  'audio/mpeg': 'mp3',
  'audio/mp3': 'mp3',
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why a chat input cannot become a vLLM chat request (the caller names the stage and request). */
export class ChatInputError extends Error {}

function bytesOf(ref: PayloadRef, what: string): string {
  if (ref.via !== 'inline' || typeof ref.data_base64 !== 'string') {
    throw new ChatInputError(
      `${what} is a ${ref.via} payload reference; a vllm stage sends media inline (data URLs) only`,
    );
  }
  return ref.data_base64;
}

/** The parts of one message: its text split at `<image>` / `<audio>`, each placeholder taking the next media item. */
function partsOf(
  content: string,
  media: { image: PayloadRef[]; audio: PayloadRef[] },
  where: string,
): Record<string, unknown>[] {
  const parts: Record<string, unknown>[] = [];
  for (const piece of content.split(/(<image>|<audio>)/)) {
    if (piece === '<image>') {
      const ref = media.image.shift();
      if (ref === undefined)
        throw new ChatInputError(`${where} has more <image> places than multi_modal_data.image has images`);
      parts.push({
        type: 'image_url',
        image_url: { url: `data:${ref.mime ?? 'image/png'};base64,${bytesOf(ref, 'an image')}` },
      });
    } else if (piece === '<audio>') {
      const ref = media.audio.shift();
      if (ref === undefined)
        throw new ChatInputError(`${where} has more <audio> places than multi_modal_data.audio has clips`);
      const format = AUDIO_FORMAT[ref.mime ?? ''];
      if (format === undefined)
        throw new ChatInputError(
          `an audio clip is ${ref.mime ?? 'of no mime type'}; vLLM's input_audio takes wav or mp3`,
        );
      parts.push({ type: 'input_audio', input_audio: { data: bytesOf(ref, 'an audio clip'), format } });
    } else if (piece !== '') {
      parts.push({ type: 'text', text: piece });
    }
  }
  return parts;
}

function refsOf(value: unknown, kind: string): PayloadRef[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every(isPayloadRef))
    throw new ChatInputError(`multi_modal_data.${kind} must be a list of payload references`);
  return [...value];
}

/**
 * The `messages` of a `/v1/chat/completions` request for a stage input that is a chat: the server's
 * chat input (`{messages: [{role, content}], multi_modal_data: {image, audio}}`, where `<image>` and
 * `<audio>` in the text mark where each media item was) becomes OpenAI content parts (`text`,
 * `image_url` with a data URL, `input_audio`); messages whose content is already a list of parts
 * pass as they are. Undefined when the input is not a chat; throws {@link ChatInputError} for a
 * chat it cannot send (too few media items, a non-inline payload, an audio format vLLM lacks).
 */
export function chatMessagesFromInput(input: unknown): ChatMessage[] | undefined {
  if (!isRecord(input) || !Array.isArray(input['messages'])) return undefined;
  const mm = isRecord(input['multi_modal_data']) ? input['multi_modal_data'] : {};
  const media = { image: refsOf(mm['image'], 'image'), audio: refsOf(mm['audio'], 'audio') };
  const messages = (input['messages'] as unknown[]).map((m, i): ChatMessage => {
    if (!isRecord(m) || typeof m['role'] !== 'string')
      throw new ChatInputError(`messages[${i}] must be an object with a role`);
    const content = m['content'];
    if (Array.isArray(content)) return { role: m['role'], content: content as Record<string, unknown>[] };
    if (typeof content !== 'string')
      throw new ChatInputError(`messages[${i}].content must be a string or a list of parts`);
    const hasMedia = /<image>|<audio>/.test(content) && media.image.length + media.audio.length > 0;
    return { role: m['role'], content: hasMedia ? partsOf(content, media, `messages[${i}]`) : content };
  });
  const left = media.image.length + media.audio.length;
  if (left > 0)
    throw new ChatInputError(`${left} media item(s) of multi_modal_data have no <image>/<audio> place in the messages`);
  return messages;
}
