import { inlinePayloadRef } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { ChatInputError, chatMessagesFromInput } from '../src/vllm/chat-messages.js';

const wav = Buffer.from('RIFF....WAVE');
const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

describe('chatMessagesFromInput (the server chat input → vLLM chat messages)', () => {
  it('puts each image and audio clip at its place, in order, as data URL / input_audio parts', () => {
    const messages = chatMessagesFromInput({
      prompt: 'ignored',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'see <image> and hear <audio>, then <image>' },
      ],
      multi_modal_data: {
        image: [inlinePayloadRef(png, { mime: 'image/png' }), inlinePayloadRef(png, { mime: 'image/jpeg' })],
        audio: [inlinePayloadRef(wav, { mime: 'audio/wav' })],
      },
    });
    expect(messages).toEqual([
      { role: 'system', content: 'be brief' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'see ' },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } },
          { type: 'text', text: ' and hear ' },
          { type: 'input_audio', input_audio: { data: wav.toString('base64'), format: 'wav' } },
          { type: 'text', text: ', then ' },
          { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${png.toString('base64')}` } },
        ],
      },
    ]);
  });

  it('is undefined for inputs that are not chats, and passes OpenAI part lists as they are', () => {
    expect(chatMessagesFromInput('hi')).toBeUndefined();
    expect(chatMessagesFromInput({ text: 'hi' })).toBeUndefined();
    const parts = [{ type: 'text', text: 'x' }];
    expect(chatMessagesFromInput({ messages: [{ role: 'user', content: parts }] })).toEqual([
      { role: 'user', content: parts },
    ]);
  });

  it('refuses media without a place, places without media, and audio vLLM cannot take', () => {
    const img = inlinePayloadRef(png, { mime: 'image/png' });
    expect(() =>
      chatMessagesFromInput({ messages: [{ role: 'user', content: 'no place' }], multi_modal_data: { image: [img] } }),
    ).toThrow(/1 media item/);
    expect(() =>
      chatMessagesFromInput({
        messages: [{ role: 'user', content: '<image><image>' }],
        multi_modal_data: { image: [img] },
      }),
    ).toThrow(ChatInputError);
    const flac = inlinePayloadRef(wav, { mime: 'audio/flac' });
    expect(() =>
      chatMessagesFromInput({ messages: [{ role: 'user', content: '<audio>' }], multi_modal_data: { audio: [flac] } }),
    ).toThrow(/wav or mp3/);
    expect(() => chatMessagesFromInput({ messages: [{ role: 7 }] })).toThrow(/messages\[0\]/);
  });
});
