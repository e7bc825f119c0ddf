/**
 * The direct data plane between hosts (issue #22, point 1) on a real etcd: agents a (127.0.0.2)
 * serving the thinker and b (127.0.0.3) serving the talker, the head running the last stage. The
 * thinker's 16 MiB latent lands in a's shared memory; the talker on b fetches it from a's payload
 * server over TCP (mutual TLS in the second suite); the head only sees the reference. Each "host"
 * has its own payload directory (OMNISTAGE_PAYLOAD_DIR), as each machine has its own /dev/shm.
 * TTL 2 s.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PayloadOrigin, PayloadRef } from '@omnistage/core';
import { derivePayloadToken, fetchRemotePayload, type FetchAccess } from '@omnistage/core/cluster';
import {
  createSandbox,
  onCleanup,
  requireBuiltCli,
  runCleanups,
  startCli,
  TEST_FIXTURES,
  waitFor,
  type CliProcess,
  type OmniEventLine,
  type Sandbox,
} from './helpers.js';
import { ETCD_MISSING, startEtcd, type TestEtcd } from './etcd-helpers.js';
import { HAS_OPENSSL, makeTestCerts, tlsFlags, type TestCerts } from './tls-helpers.js';

const FIXTURE = join(TEST_FIXTURES, 'head-latent.yaml');
const TTL_S = 2;
const SECRET = 'data-plane-test-secret-0123456789abcdef';
const ADDRESS: Record<string, string> = { a: '127.0.0.2', b: '127.0.0.3' };
const LATENT_BYTES = 16 * 262144 * 4;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

interface Cluster {
  head: CliProcess;
  url: string;
  runId: string;
  agents: Map<string, CliProcess>;
  startAgent(hostId: string): CliProcess;
}

/** The directory a host's payload files live in (its private run directory under its own base). */
function hostRunDirs(box: Sandbox, host: string, runId: string): string[] {
  const base = join(box.root, `payloads-${host}`);
  return existsSync(base)
    ? readdirSync(base)
        .filter((n) => n.startsWith(`omnistage-${runId}+`))
        .map((n) => join(base, n))
    : [];
}

async function complete(url: string, prompt: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'head-latent', prompt }),
  });
  return { status: res.status, body: await res.text() };
}

const textOf = (body: string): string => (JSON.parse(body) as { choices: { text: string }[] }).choices[0]!.text;

/** The same pipeline on one host (no num_replicas: 0), served plainly: the answers to compare with. */
async function answersOnOneHost(box: Sandbox, prompts: string[]): Promise<string[]> {
  const file = join(box.root, 'head-latent.yaml');
  await writeFile(file, readFileSync(FIXTURE, 'utf8').replace(/^\s+num_replicas: 0\n/gm, ''));
  const serve = startCli(
    ['serve', file, '--platform', 'cpu', '--engine', 'reference', '--port', '0', '--host', '127.0.0.1'],
    { tmpDir: box.tmp, env: { OMNISTAGE_PAYLOAD_DIR: box.tmp } },
  );
  onCleanup(() => serve.signal('SIGKILL'));
  await waitFor(() => /at http:\/\/127\.0\.0\.1:\d+\/v1/.test(serve.stderr()) || serve.exitStatus() !== null, 90_000);
  const url = /at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(serve.stderr())?.[1];
  expect(url, serve.describe()).toBeDefined();
  const answers: string[] = [];
  for (const p of prompts) {
    const r = await complete(url!, p);
    expect(r.status, r.body).toBe(200);
    answers.push(textOf(r.body));
  }
  serve.signal('SIGTERM');
  await serve.waitExit(30_000);
  return answers;
}

async function openCluster(box: Sandbox, etcd: TestEtcd, secretFile: string, tls: string[][] = []): Promise<Cluster> {
  const [headTls = [], agentTls = []] = tls;
  const payloadEnv = async (host: string): Promise<Record<string, string>> => {
    const dir = join(box.root, `payloads-${host}`);
    await mkdir(dir, { recursive: true });
    return { OMNISTAGE_PAYLOAD_DIR: dir };
  };
  const headEnv = await payloadEnv('head');
  const hostEnv = { a: await payloadEnv('a'), b: await payloadEnv('b') } as Record<string, Record<string, string>>;
  const head = startCli(
    [
      'serve',
      FIXTURE,
      '--platform',
      'cpu',
      '--engine',
      'reference',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--lock-dir',
      box.lockDir,
      '--log-format',
      'json',
      '--head',
      '--etcd',
      etcd.url,
      '--lease-ttl',
      String(TTL_S),
      '--cluster-secret-file',
      secretFile,
      '--host-id',
      'head',
      '--init-timeout',
      '120',
      '--events',
      box.eventsFile('head'),
      ...headTls,
    ],
    { tmpDir: box.tmp, env: headEnv },
  );
  onCleanup(() => head.signal('SIGKILL'));
  await waitFor(() => /head of run \S+:/.test(head.stderr()) || head.exitStatus() !== null, 60_000);
  const runId = /head of run (\S+):/.exec(head.stderr())?.[1] ?? '';
  expect(runId, head.describe()).not.toBe('');
  const agents = new Map<string, CliProcess>();
  const startAgent = (hostId: string): CliProcess => {
    const agent = startCli(
      [
        'agent',
        FIXTURE,
        '--platform',
        'cpu',
        '--engine',
        'reference',
        '--etcd',
        etcd.url,
        '--run',
        runId,
        '--lease-ttl',
        String(TTL_S),
        '--stages',
        hostId === 'a' ? '0' : '1',
        '--host-id',
        hostId,
        '--advertise',
        ADDRESS[hostId]!,
        '--cluster-secret-file',
        secretFile,
        '--lock-dir',
        join(box.root, `locks-${hostId}`),
        '--log-format',
        'json',
        ...agentTls,
      ],
      { tmpDir: box.tmp, env: hostEnv[hostId]! },
    );
    onCleanup(() => agent.signal('SIGKILL'));
    agents.set(hostId, agent);
    return agent;
  };
  startAgent('a');
  startAgent('b');
  await waitFor(
    () => /serving \\?"[^"]*" at http:\/\/127\.0\.0\.1:\d+\/v1/.test(head.stderr()) || head.exitStatus() !== null,
    120_000,
  );
  const url = /serving \\?"[^"]*" at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(head.stderr())?.[1] ?? '';
  expect(url, head.describe()).not.toBe('');
  return { head, url, runId, agents, startAgent };
}

/** Where an agent's payload server listens, from its start line. */
function payloadUrlOf(agent: CliProcess): string {
  return /payloads served at (tcp:\/\/[0-9.]+:\d+)/.exec(agent.stderr())?.[1] ?? '';
}

/** How the test itself fetches `key` from host a, as a consumer on another host would. */
function fetchFromA(c: Cluster, key: string): { origin: PayloadOrigin; access: FetchAccess; asRef: PayloadRef } {
  return {
    origin: { host_id: 'a', url: payloadUrlOf(c.agents.get('a')!) },
    access: {
      run_id: c.runId,
      token: derivePayloadToken(Buffer.from(SECRET), c.runId, 'fetch'),
      max_bytes: LATENT_BYTES,
      timeout_ms: 30_000,
    },
    asRef: { $payload: 1, key, size: LATENT_BYTES, via: 'shm' },
  };
}

const stored = (head: CliProcess, stage: number): OmniEventLine[] =>
  head.events().filter((e) => e.type === 'payload:stored' && e['stage_id'] === stage);

describe.skipIf(ETCD_MISSING !== null && !process.env['CI'])('payloads between hosts (the data plane)', () => {
  let box: Sandbox;
  let etcd: TestEtcd;
  let secretFile: string;
  let oneHost: string[];
  const PROMPTS = ['hello', 'a latent across hosts'];

  beforeAll(async () => {
    requireBuiltCli();
    if (ETCD_MISSING !== null) throw new Error(ETCD_MISSING);
    box = await createSandbox();
    etcd = await startEtcd();
    secretFile = join(box.root, 'cluster-secret');
    await writeFile(secretFile, SECRET);
    await chmod(secretFile, 0o600);
    oneHost = await answersOnOneHost(box, PROMPTS);
  }, 180_000);
  afterAll(runCleanups, 60_000);

  describe('over plain TCP', () => {
    let c: Cluster;
    beforeAll(async () => {
      c = await openCluster(box, etcd, secretFile);
    }, 240_000);

    it('moves a 16 MiB latent from host a to the talker on host b intact; a wrong token and a stale key are refused', async () => {
      const before = stored(c.head, 0).length;
      const answer = complete(c.url, PROMPTS[0]!);
      expect(await waitFor(() => stored(c.head, 0).length > before, 60_000), c.head.describe()).toBe(true);
      const ref = stored(c.head, 0)[before]!;
      expect(ref['size']).toBe(LATENT_BYTES);
      const key = String(ref['key']);
      // The bytes sit in host a's shared memory only; the talker on b holds the reference until it is done.
      const [dirA] = hostRunDirs(box, 'a', c.runId);
      const file = join(dirA!, `omnistage-${c.runId}-${key}`);
      expect(existsSync(file)).toBe(true);
      for (const d of hostRunDirs(box, 'b', c.runId)) expect(readdirSync(d).filter((n) => n.includes(key))).toEqual([]);
      const { origin, access, asRef } = fetchFromA(c, key);
      const fetched = await fetchRemotePayload(asRef, origin, access);
      expect(sha256(fetched)).toBe(sha256(readFileSync(file).subarray(0, LATENT_BYTES)));
      await expect(fetchRemotePayload(asRef, origin, { ...access, token: 'not-the-token' })).rejects.toThrow(
        /refused: wrong token/,
      );
      await expect(fetchRemotePayload(asRef, origin, { ...access, max_bytes: 1024 })).rejects.toMatchObject({
        code: 'OMNI_PAYLOAD_TOO_LARGE',
      });

      const r = await answer;
      expect(r.status, r.body).toBe(200);
      // The talker's answer depends on a digest of every byte it read: the same as on one host.
      expect(textOf(r.body)).toBe(oneHost[0]);
      // Freed on host a once the talker acknowledged it: the key is stale now.
      expect(await waitFor(() => !existsSync(file), 10_000)).toBe(true);
      await expect(fetchRemotePayload(asRef, origin, access)).rejects.toThrow(/refused: payload \w+ is gone/);
      expect(c.agents.get('a')!.stderr()).toMatch(/refused a payload request from 127\.0\.0\.1: wrong token/);
    }, 120_000);

    it('a SIGKILLed producer host fails the request waiting for its latent, naming the host; its next agent reaps its payloads', async () => {
      // The talker takes one request at a time: the second latent waits at host a while the first is spoken.
      const storedBefore = stored(c.head, 0).length;
      const first = complete(c.url, PROMPTS[1]!);
      expect(await waitFor(() => stored(c.head, 0).length > storedBefore, 60_000)).toBe(true);
      const second = complete(c.url, PROMPTS[0]!);
      expect(await waitFor(() => stored(c.head, 0).length > storedBefore + 1, 60_000)).toBe(true);
      const [deadDir] = hostRunDirs(box, 'a', c.runId);
      const agentA = c.agents.get('a')!;
      agentA.signal('SIGKILL');
      await agentA.waitExit(10_000);
      const [r1, r2] = await Promise.all([first, second]);
      expect(r2.status, r2.body).not.toBe(200);
      expect(r2.body).toMatch(/from host a/);
      expect(r2.body).toMatch(/ECONNREFUSED|closed/);
      expect([200, 500, 502, 503]).toContain(r1.status);
      // Nothing of host a is held at the head any more...
      const key = String(stored(c.head, 0)[storedBefore + 1]!['key']);
      expect(
        await waitFor(() => c.head.events().some((e) => e.type === 'payload:freed' && e['key'] === key), 15_000),
      ).toBe(true);
      // ...and its payload files are gone once an agent of host a starts again.
      expect(existsSync(deadDir!)).toBe(true);
      const again = c.startAgent('a');
      expect(await waitFor(() => /reaped 1 payload directory/.test(again.stderr()), 60_000), again.describe()).toBe(
        true,
      );
      expect(existsSync(deadDir!)).toBe(false);
    }, 180_000);
  });

  describe.skipIf(!HAS_OPENSSL && !process.env['CI'])('over mutual TLS', () => {
    let c: Cluster;
    let certs: TestCerts;
    beforeAll(async () => {
      const dir = join(box.root, 'certs');
      await mkdir(dir);
      certs = makeTestCerts(dir);
      c = await openCluster(box, etcd, secretFile, [
        tlsFlags(certs.server, certs.ca),
        tlsFlags(certs.client, certs.ca),
      ]);
    }, 240_000);

    it('moves the 16 MiB latent over TLS intact, and refuses a peer without a certificate of the cluster', async () => {
      const before = stored(c.head, 0).length;
      const answer = complete(c.url, PROMPTS[1]!);
      expect(await waitFor(() => stored(c.head, 0).length > before, 60_000), c.head.describe()).toBe(true);
      const key = String(stored(c.head, 0)[before]!['key']);
      const [dirA] = hostRunDirs(box, 'a', c.runId);
      const file = join(dirA!, `omnistage-${c.runId}-${key}`);
      const { origin, access, asRef } = fetchFromA(c, key);
      const pem = (f: string): Buffer => readFileSync(f);
      const fetched = await fetchRemotePayload(asRef, origin, {
        ...access,
        tls: { cert: pem(certs.client.cert), key: pem(certs.client.key), ca: pem(certs.ca.cert) },
      });
      expect(sha256(fetched)).toBe(sha256(readFileSync(file).subarray(0, LATENT_BYTES)));
      // Plain TCP, and a certificate of another CA: the handshake fails before any request.
      await expect(fetchRemotePayload(asRef, origin, access)).rejects.toMatchObject({ code: 'OMNI_PAYLOAD_FETCH' });
      await expect(
        fetchRemotePayload(asRef, origin, {
          ...access,
          tls: { cert: pem(certs.rogueClient.cert), key: pem(certs.rogueClient.key), ca: pem(certs.ca.cert) },
        }),
      ).rejects.toMatchObject({ code: 'OMNI_PAYLOAD_FETCH' });
      const r = await answer;
      expect(r.status, r.body).toBe(200);
      expect(textOf(r.body)).toBe(oneHost[1]);
      expect(c.agents.get('a')!.stderr()).toMatch(/refused a payload connection: TLS handshake failed/);
    }, 120_000);
  });
});
