/**
 * Helpers of the `omnistage serve` acceptance tests: start the real CLI on port 0, learn its URL
 * from its log, wait until it serves; read Server-Sent Events from a raw HTTP response.
 */
import { join } from 'node:path';
import { REPO_ROOT, startCli, waitFor, type CliProcess, type Sandbox } from './helpers.js';

export const SERVE_EXAMPLE = join(REPO_ROOT, 'examples', 'serve', 'pipeline.yaml');

export interface Served {
  cli: CliProcess;
  /** `http://127.0.0.1:<port>` */
  url: string;
}

/** Starts `omnistage serve FILE --port 0 ...args` and resolves once it serves (its "serving" line). */
export async function startServe(
  box: Sandbox,
  file: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<Served> {
  const cli = startCli(
    [
      'serve',
      file,
      '--platform',
      'cpu',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--lock-dir',
      box.lockDir,
      '--log-format',
      'json',
      ...args,
    ],
    {
      tmpDir: box.tmp,
      env,
    },
  );
  const ok = await waitFor(
    () => /serving \\?"[^"]*\\?" at http:\/\/127\.0\.0\.1:\d+\/v1/.test(cli.stderr()) || cli.exitStatus() !== null,
    60_000,
  );
  const m = /serving \\?"[^"]*\\?" at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(cli.stderr());
  if (!ok || !m) throw new Error(`omnistage serve did not come up\n${cli.describe()}`);
  return { cli, url: m[1]! };
}

/** A streaming response read event by event: each `data:` payload, `[DONE]` included. */
export async function* sseEvents(res: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      for (const line of event.split('\n')) if (line.startsWith('data: ')) yield line.slice(6);
    }
  }
}

/** POSTs JSON; `headers` add to (or replace) content-type. */
export function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

/** Parses Prometheus text format into `name{labels}` → value (comments skipped; every other line must parse). */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}
