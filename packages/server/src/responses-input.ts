import { badField } from './http-error.js';
import type { ChatCompletionRequest } from './schemas.js';

type Message = ChatCompletionRequest['messages'][number];

const ROLES = ['system', 'developer', 'user', 'assistant'];

/** A Responses content part as the chat part it stands for (text, image, audio). */
function chatPart(raw: unknown, param: string): unknown {
  const part = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  switch (part['type']) {
    case 'input_text':
    case 'output_text':
      if (typeof part['text'] !== 'string') throw badField(`${param}.text`, `${param}.text must be a string`);
      return { type: 'text', text: part['text'] };
    case 'input_image':
      return { type: 'image_url', image_url: { url: part['image_url'] } };
    case 'input_audio':
      return { type: 'input_audio', input_audio: part['input_audio'] };
    default:
      throw badField(`${param}.type`, `${param}.type must be one of input_text, output_text, input_image, input_audio`);
  }
}

/**
 * The Responses API's `input` (a string, or message items whose content is a string or parts)
 * and `instructions` as chat messages, so both endpoints build stage 0's input the same way.
 * Items other than messages (tool calls and their outputs, reasoning) are a 400 naming them.
 */
export function responsesMessages(input: string | unknown[], instructions: string | null | undefined): Message[] {
  const out: Message[] = instructions ? [{ role: 'developer', content: instructions }] : [];
  if (typeof input === 'string') return [...out, { role: 'user', content: input }];
  input.forEach((raw, i) => {
    const param = `input[${i}]`;
    const item = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    if (item['type'] !== undefined && item['type'] !== 'message')
      throw badField(
        `${param}.type`,
        `${param}.type "${String(item['type'])}" is not supported by this pipeline: only message items (no tool calls, no reasoning items)`,
      );
    const role = item['role'];
    if (typeof role !== 'string' || !ROLES.includes(role))
      throw badField(`${param}.role`, `${param}.role must be one of ${ROLES.join(', ')}`);
    const content = item['content'];
    if (typeof content === 'string') out.push({ role, content });
    else if (Array.isArray(content))
      out.push({ role, content: content.map((p, j) => chatPart(p, `${param}.content[${j}]`)) });
    else throw badField(`${param}.content`, `${param}.content must be a string or a list of parts`);
  });
  return out;
}
