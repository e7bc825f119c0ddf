/**
 * The data plane's wire (docs/protocol.md, "Payload fetch") with real sockets and real payload
 * files: a payload server and the fetch client, and raw peers that break the protocol on either
 * side. Each limit is checked: the token, the run, the key's file and its size, the request line's
 * length, the announced size, more or fewer bytes than announced, the deadline and the maximum.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { derivePayloadToken } from '../../src/cluster/cluster-token.js';
import { PayloadServer } from '../../src/cluster/payload-server.js';
import { fetchRemotePayload, releaseRemotePayload, type FetchAccess } from '../../src/connectors/payload-fetch.js';
import type { PayloadRef } from '../../src/connectors/payload-ref.js';
import { createRunPayloadDir, listRunPayloads, writePayload } from '../../src/connectors/shm-store.js';

const RUN = 'fetchtest';
const SECRET = Buffer.from('payload-fetch-test-secret-0123456789');
const KEY = 's0r0_abcd_0';
const BYTES = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 31) & 0xff));

let base: string;
let dir: string;
let server: PayloadServer;
const warnings: string[] = [];
const extra: Server[] = [];

const ref = (over: Partial<PayloadRef> = {}): PayloadRef => ({
  $payload: 1,
  key: KEY,
  size: BYTES.byteLength,
  via: 'shm',
  ...over,
});
const access = (over: Partial<FetchAccess> = {}): FetchAccess => ({
  run_id: RUN,
  token: derivePayloadToken(SECRET, RUN, 'fetch'),
  max_bytes: 64 * 1024 * 1024,
  timeout_ms: 10_000,
  ...over,
});
const origin = (): { host_id: string; url: string } => ({ host_id: 'a', url: server.url });

/** A raw server on 127.0.0.1 that answers every connection with `reply(socket)`. */
async function rawServer(reply: (socket: import('node:net').Socket) => void): Promise<string> {
  const s = createServer(reply);
  extra.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `tcp://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** The first line a payload server answers to `line`. */
function rawRequest(line: string): Promise<string> {
  const { port } = new URL(server.url.replace('tcp:', 'http:'));
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: Number(port) });
    let got = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(line));
    s.on('data', (d: string) => (got += d));
    s.on('close', () => resolve(got.split('\n')[0]!));
    s.on('error', reject);
  });
}

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'omni-fetch-test-'));
  dir = createRunPayloadDir(RUN, base);
  writePayload(RUN, KEY, BYTES, dir);
  warnings.length = 0;
  server = await PayloadServer.start({
    runId: RUN,
    dir,
    secret: SECRET,
    host: '127.0.0.1',
    port: 0,
    requestTimeoutMs: 2_000,
    warn: (m) => warnings.push(m),
  });
});
afterEach(async () => {
  await server.close();
  for (const s of extra.splice(0)) s.close();
  await rm(base, { recursive: true, force: true });
});

describe('payload server and fetch', () => {
  it('serves a payload by key, intact, into a fresh Buffer or the one given', async () => {
    expect((await fetchRemotePayload(ref(), origin(), access())).equals(BYTES)).toBe(true);
    const into = Buffer.alloc(BYTES.byteLength + 10, 7);
    const got = await fetchRemotePayload(ref(), origin(), access(), into);
    expect(got.buffer).toBe(into.buffer);
    expect(got.equals(BYTES)).toBe(true);
    expect(into[BYTES.byteLength]).toBe(7);
  });

  it('refuses a wrong token, another run, a stale key and a size other than the file, saying why', async () => {
    const cases: [Promise<unknown>, RegExp][] = [
      [fetchRemotePayload(ref(), origin(), access({ token: 'x' })), /refused: wrong token/],
      [
        fetchRemotePayload(ref(), origin(), access({ token: derivePayloadToken(SECRET, RUN, 'release') })),
        /refused: wrong token/,
      ],
      [fetchRemotePayload(ref(), origin(), access({ run_id: 'other' })), /refused: not a payload of run fetchtest/],
      [fetchRemotePayload(ref({ key: 's0r0_abcd_1' }), origin(), access()), /refused: payload s0r0_abcd_1 is gone/],
      [fetchRemotePayload(ref({ size: 100 }), origin(), access()), /its reference says 100/],
    ];
    for (const [p, message] of cases) await expect(p).rejects.toMatchObject({ code: 'OMNI_PAYLOAD_FETCH', message });
    expect(warnings.filter((w) => w.startsWith('refused a payload request from 127.0.0.1'))).toHaveLength(5);
  });

  it('frees a payload only with the release token', async () => {
    await expect(releaseRemotePayload(ref(), origin(), access())).rejects.toThrow(/wrong token/);
    expect(listRunPayloads(RUN, dir)).toEqual([KEY]);
    await releaseRemotePayload(ref(), origin(), access({ token: derivePayloadToken(SECRET, RUN, 'release') }));
    expect(listRunPayloads(RUN, dir)).toEqual([]);
    await expect(fetchRemotePayload(ref(), origin(), access())).rejects.toThrow(/is gone/);
  });

  it('refuses a request line that is not JSON or too long, and drops a peer that sends none', async () => {
    expect(await rawRequest('not json\n')).toMatch(/"ok":false,"error":"the request is not JSON"/);
    expect(await rawRequest(`${'x'.repeat(5000)}\n`)).toMatch(/the request line is too long/);
    expect(await rawRequest('{"v":2}\n')).toMatch(/unsupported version 2/);
    expect(await rawRequest('{"v":1')).toBe(''); // no newline: closed at the request deadline
  });

  it('refuses a payload above max_bytes before dialling', async () => {
    const nowhere = { host_id: 'a', url: 'tcp://127.0.0.1:9' };
    await expect(fetchRemotePayload(ref(), nowhere, access({ max_bytes: 1024 }))).rejects.toMatchObject({
      code: 'OMNI_PAYLOAD_TOO_LARGE',
      message: expect.stringMatching(/has 3145745 bytes, more than the 1024/),
    });
  });

  it('fails on a server that announces another size, sends more or fewer bytes, or misses the deadline', async () => {
    const header = (size: number): string => `${JSON.stringify({ ok: true, size })}\n`;
    const small = ref({ size: 4 });
    const cases: [(s: import('node:net').Socket) => void, RegExp, number?][] = [
      [(s) => s.end(header(5) + 'abcde'), /announced 5 bytes for payload s0r0_abcd_0, its reference says 4/],
      [(s) => s.end(header(4) + 'abcdef'), /sent more than the 4 bytes it announced/],
      [(s) => s.end(header(4) + 'ab'), /closed after 2 of 4 bytes/],
      [(s) => s.end('garbage\n'), /the reply is not a payload server's/],
      [() => undefined, /did not finish within 300 ms/, 300],
    ];
    for (const [reply, message, timeout] of cases) {
      const url = await rawServer(reply);
      await expect(
        fetchRemotePayload(small, { host_id: 'b', url }, access(timeout === undefined ? {} : { timeout_ms: timeout })),
      ).rejects.toMatchObject({ code: 'OMNI_PAYLOAD_FETCH', message });
    }
  });
});
