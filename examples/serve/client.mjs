// Talks to `omnistage serve examples/serve/pipeline.yaml` with the official openai client:
// a chat answer in text and audio, an image, and speech. Files land in ./out/.
//
//   node examples/serve/client.mjs            (OMNISTAGE_URL=http://127.0.0.1:8000/v1 by default)
import { mkdirSync, writeFileSync } from 'node:fs';
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.OMNISTAGE_URL ?? 'http://127.0.0.1:8000/v1',
  apiKey: process.env.OMNISTAGE_API_KEY ?? 'none',
});
const out = new URL('./out/', import.meta.url);
mkdirSync(out, { recursive: true });

const chat = await client.chat.completions.create({
  model: 'omni-demo',
  messages: [{ role: 'user', content: 'Tell me about lighthouses.' }],
  modalities: ['text', 'audio'],
});
for (const choice of chat.choices) {
  if (choice.message.audio) {
    writeFileSync(new URL('answer.wav', out), Buffer.from(choice.message.audio.data, 'base64'));
    console.log('audio: out/answer.wav');
  } else {
    console.log(`text: ${choice.message.content}`);
  }
}

const stream = await client.chat.completions.create({
  model: 'omni-demo',
  messages: [{ role: 'user', content: 'Stream it.' }],
  stream: true,
  modalities: ['text'],
});
let streamed = '';
for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
console.log(`streamed: ${streamed}`);

const image = await client.images.generate({ model: 'omni-demo', prompt: 'a lighthouse at dawn', size: '256x256' });
writeFileSync(new URL('lighthouse.png', out), Buffer.from(image.data[0].b64_json, 'base64'));
console.log('image: out/lighthouse.png');

const speech = await client.audio.speech.create({
  model: 'omni-demo',
  voice: 'alloy',
  input: 'Hello from omnistage.',
  response_format: 'wav',
});
writeFileSync(new URL('hello.wav', out), Buffer.from(await speech.arrayBuffer()));
console.log('speech: out/hello.wav');
