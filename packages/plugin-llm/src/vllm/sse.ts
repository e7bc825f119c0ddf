/**
 * A minimal Server-Sent Events reader for OpenAI-style streams (`data: {...}` events separated by
 * blank lines, `data: [DONE]` at the end). Yields the `data` of each event: multi-line data joined
 * with `\n`, comment lines (`: ...`) and other fields (`event:`, `id:`, `retry:`) ignored. Lines may
 * end in `\n` or `\r\n`; an event cut off by the end of the stream is still yielded.
 */
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  let data: string[] = [];

  /** Feeds one line; returns the event data when the line ends an event. */
  const feed = (line: string): string | undefined => {
    if (line === '') {
      if (data.length === 0) return undefined;
      const event = data.join('\n');
      data = [];
      return event;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    return undefined;
  };

  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, '');
      buffer = buffer.slice(nl + 1);
      const event = feed(line);
      if (event !== undefined) yield event;
    }
  }
  buffer += decoder.decode();
  if (buffer !== '') {
    const event = feed(buffer.replace(/\r$/, ''));
    if (event !== undefined) yield event;
  }
  const last = feed('');
  if (last !== undefined) yield last;
}
