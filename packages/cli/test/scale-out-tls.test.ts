/**
 * Mutual TLS on the head's control port, and Python replicas on agents (issue #11): a real etcd,
 * certificates made with the openssl CLI, a head (`serve --head --tls-*`) running stage 0 of
 * head-python.yaml and an agent serving stage 1 (Node worker SDK) and stage 2 (Python worker SDK)
 * over mutual TLS; raw clients without the right certificate are refused before any hello; the
 * same pipeline over plain TCP; and bad TLS files refused at startup with exit 2.
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSandbox,
  isAlive,
  onCleanup,
  requireBuiltCli,
  runCleanups,
  runCli,
  STACK_LINE,
  startCli,
  TEST_FIXTURES,
  waitFor,
  type CliProcess,
  type Sandbox,
} from './helpers.js';
import { ETCD_MISSING, startEtcd, type TestEtcd } from './etcd-helpers.js';
import { HAS_OPENSSL, makeTestCerts, tlsFlags, type TestCerts } from './tls-helpers.js';

const FIXTURE = join(TEST_FIXTURES, 'head-python.yaml');
const TTL_S = 2;
const MISSING = ETCD_MISSING ?? (HAS_OPENSSL ? null : 'openssl is not installed; .ci/run installs it');

/** PIDs of the replicas an agent reported starting. */
function agentReplicaPids(agent: CliProcess): number[] {
  return [...agent.stderr().matchAll(/stage \d+ replica \d+: started \(pid (\d+)/g)].map((m) => Number(m[1]));
}

/**
 * Dials the control port (over TLS with `tls`, else plain TCP), says a hello with a made-up token,
 * and resolves once the head closed the connection: with the protocol lines it answered (a refused
 * TLS handshake answers none) and the client's error, if any.
 */
function probe(
  port: number,
  tls: ConnectionOptions | null,
): Promise<{ lines: Record<string, unknown>[]; error: string | null }> {
  return new Promise((resolve) => {
    const hello = `${JSON.stringify({ type: 'hello', v: 1, token: 'y'.repeat(43), stage_id: 1, replica_id: 0, pid: process.pid })}\n`;
    const socket =
      tls === null
        ? tcpConnect({ host: '127.0.0.1', port }, () => socket.write(hello))
        : tlsConnect({ host: '127.0.0.1', port, ...tls }, () => socket.write(hello));
    let received = '';
    let error: string | null = null;
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', (err) => (error = err.message));
    socket.on('close', () => {
      const lines = received
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ lines, error });
    });
  });
}

describe.skipIf(MISSING !== null && !process.env['CI'])(
  'mutual TLS on the control port, Python replicas on agents',
  () => {
    let box: Sandbox;
    let etcd: TestEtcd;
    let certs: TestCerts;
    let secretFile: string;

    /** A head of head-python.yaml; resolves once it published itself, with its run id, control port and URL getter. */
    async function startHead(name: string, tls: string[]): Promise<{ head: CliProcess; runId: string; port: number }> {
      const head = startCli(
        [
          'serve',
          FIXTURE,
          '--platform',
          'cpu',
          '--port',
          '0',
          '--lock-dir',
          join(box.root, `locks-${name}`),
          '--events',
          box.eventsFile(name),
          '--head',
          '--etcd',
          etcd.url,
          '--lease-ttl',
          String(TTL_S),
          '--cluster-secret-file',
          secretFile,
          '--host-id',
          name,
          '--init-timeout',
          '120',
          ...tls,
        ],
        // A head the cleanup has to SIGKILL (a failed test) leaves its payload directory in the sandbox, not in /dev/shm.
        { tmpDir: box.tmp, env: { OMNISTAGE_PAYLOAD_DIR: box.tmp } },
      );
      await waitFor(() => /replicas dial tcp:\/\//.test(head.stderr()) || head.exitStatus() !== null, 60_000);
      const m = /head of run (\S+): replicas dial tcp:\/\/127\.0\.0\.1:(\d+)/.exec(head.stderr());
      expect(m, head.describe()).not.toBeNull();
      return { head, runId: m![1]!, port: Number(m![2]) };
    }

    function startAgent(hostId: string, runId: string, tls: string[]): CliProcess {
      const agent = startCli(
        [
          'agent',
          FIXTURE,
          '--platform',
          'cpu',
          '--etcd',
          etcd.url,
          '--run',
          runId,
          '--lease-ttl',
          String(TTL_S),
          '--stages',
          '1,2',
          '--host-id',
          hostId,
          '--cluster-secret-file',
          secretFile,
          '--lock-dir',
          join(box.root, `locks-${hostId}`),
          ...tls,
        ],
        // Its payload directory in the sandbox: a killed agent's is reaped only by its host's next agent.
        { tmpDir: box.tmp, env: { OMNISTAGE_PAYLOAD_DIR: box.tmp } },
      );
      onCleanup(() => agentReplicaPids(agent).forEach((pid) => isAlive(pid) && process.kill(pid, 'SIGKILL')));
      return agent;
    }

    async function servingUrl(head: CliProcess): Promise<string> {
      await waitFor(
        () => /serving "[^"]*" at http:\/\/127\.0\.0\.1:\d+\/v1/.test(head.stderr()) || head.exitStatus() !== null,
        120_000,
      );
      const url = /serving "[^"]*" at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(head.stderr())?.[1];
      expect(url, head.describe()).toBeDefined();
      return url!;
    }

    async function complete(url: string): Promise<{ status: number; text: string }> {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'head-python', prompt: 'hello over tls', max_tokens: 4 }),
      });
      const body = (await res.json()) as { choices?: { text: string }[] };
      return { status: res.status, text: body.choices?.[0]?.text ?? JSON.stringify(body) };
    }

    /** Stops an agent and its head cleanly (SIGTERM), as a user would. */
    async function stopAll(agent: CliProcess, head: CliProcess): Promise<void> {
      agent.signal('SIGTERM');
      expect((await agent.waitExit(30_000)).code, agent.describe()).toBe(143); // stopped by SIGTERM, after its teardown
      head.signal('SIGTERM');
      expect((await head.waitExit(30_000)).code, head.describe()).toBe(0); // serve drains, then exits 0
      expect(agentReplicaPids(agent).filter(isAlive)).toEqual([]);
    }

    let tlsHead: { head: CliProcess; runId: string; port: number };
    let tlsAgent: CliProcess;

    beforeAll(async () => {
      requireBuiltCli();
      if (MISSING !== null) throw new Error(MISSING);
      box = await createSandbox();
      certs = makeTestCerts(box.root);
      etcd = await startEtcd();
      secretFile = join(box.root, 'cluster-secret');
      await writeFile(secretFile, 'tls-test-cluster-secret-0123456789');
      await chmod(secretFile, 0o600);
      tlsHead = await startHead('tls-head', tlsFlags(certs.server, certs.ca));
      tlsAgent = startAgent('tls-agent', tlsHead.runId, tlsFlags(certs.client, certs.ca));
    }, 120_000);

    afterAll(runCleanups, 60_000);

    it("a TLS head and a TLS agent serve requests end to end: Node and Python replicas over mutual TLS, the tensor in the agent's shared memory", async () => {
      const { head } = tlsHead;
      const url = await servingUrl(head);
      expect(head.stderr()).toMatch(/replicas dial tcp:\/\/127\.0\.0\.1:\d+ \(mutual TLS\)/);
      const attached = head.events().filter((e) => e.type === 'replica:attached');
      expect(attached.map((e) => [e.stage_id, e['host_id']]).sort()).toEqual([
        [1, 'tls-agent'],
        [2, 'tls-agent'],
      ]);
      for (let i = 0; i < 3; i++) {
        // Stage 1's 96 KiB latent reaches the Python stage on the same agent through that host's shared memory.
        expect(await complete(url)).toEqual({ status: 200, text: '24576 floats via shm' });
      }
      const dispatched = head.events().filter((e) => e.type === 'request:dispatched' && e.stage_id === 2);
      expect(dispatched.length).toBeGreaterThanOrEqual(3);
    }, 150_000);

    it('refuses, before any hello, plain TCP, a certificate of another CA and a client without a certificate; each logged as a rejected connection', async () => {
      const { head, port } = tlsHead;
      const rejections = (): number =>
        (head.stderr().match(/rejected a control connection: |\d+ more control connections? rejected/g) ?? []).length;
      const refused = async (tls: ConnectionOptions | null): Promise<void> => {
        const before = rejections();
        const r = await probe(port, tls);
        expect(r.lines).toEqual([]); // not even an `error` line: the hello never reached the protocol
        expect(await waitFor(() => rejections() > before, 10_000), head.describe()).toBe(true);
      };
      await refused(null);
      // The first rejection of this head is said at once (later ones may be summed up per second).
      expect(head.stderr()).toMatch(/rejected a control connection: TLS handshake failed: \w+/);
      const ca = await readFile(certs.ca.cert);
      await refused({ ca, cert: await readFile(certs.rogueClient.cert), key: await readFile(certs.rogueClient.key) });
      await refused({ ca });
      // The same probe with the agent's certificate gets through TLS and reaches the token check.
      const through = await probe(port, {
        ca,
        cert: await readFile(certs.client.cert),
        key: await readFile(certs.client.key),
      });
      expect(through.lines).toEqual([{ type: 'error', code: 'OMNI_PROTOCOL', message: 'unknown token' }]);
      expect((await complete(await servingUrl(head))).status).toBe(200); // the real replicas still serve
    }, 60_000);

    it('an agent without a client certificate is refused, naming the flags it needs', async () => {
      const plain = startAgent('no-cert', tlsHead.runId, []);
      const exit = await plain.waitExit(60_000);
      expect(exit.code, plain.describe()).toBe(1);
      expect(plain.stderr()).toMatch(
        /OMNI_CLUSTER: the head of run \S+ accepts replicas over mutual TLS only, and this agent has no client certificate/,
      );
      expect(plain.stderr()).toMatch(/--tls-cert, --tls-key/);
      expect(agentReplicaPids(plain)).toEqual([]);
      await stopAll(tlsAgent, tlsHead.head);
    }, 90_000);

    it('a Python stage on an agent attaches to a plain-TCP head and serves', async () => {
      const { head, runId } = await startHead('tcp-head', []);
      const agent = startAgent('tcp-agent', runId, []);
      const url = await servingUrl(head);
      expect(head.stderr()).not.toMatch(/mutual TLS/);
      expect(
        head
          .events()
          .filter((e) => e.type === 'replica:attached')
          .map((e) => [e.stage_id, e['host_id']])
          .sort(),
      ).toEqual([
        [1, 'tcp-agent'],
        [2, 'tcp-agent'],
      ]);
      for (let i = 0; i < 2; i++) expect(await complete(url)).toEqual({ status: 200, text: '24576 floats via shm' });
      await stopAll(agent, head);
    }, 150_000);
  },
);

describe.skipIf(!HAS_OPENSSL && !process.env['CI'])('TLS files are checked before anything starts', () => {
  let box: Sandbox;
  let certs: TestCerts;
  beforeAll(async () => {
    requireBuiltCli();
    box = await createSandbox();
    certs = makeTestCerts(box.root);
  });
  afterAll(runCleanups);

  // Nothing listens on port 9: a command that got as far as etcd would fail with exit 1, not 2.
  const head = (tls: string[]): ReturnType<typeof runCli> =>
    runCli(
      [
        'serve',
        FIXTURE,
        '--platform',
        'cpu',
        '--port',
        '0',
        '--lock-dir',
        box.lockDir,
        '--head',
        '--etcd',
        'http://127.0.0.1:9',
        ...tls,
      ],
      { tmpDir: box.tmp, timeoutMs: 60_000 },
    );
  const up = (tls: string[]): ReturnType<typeof runCli> =>
    runCli(
      ['up', FIXTURE, '--platform', 'cpu', '--lock-dir', box.lockDir, '--head', '--etcd', 'http://127.0.0.1:9', ...tls],
      { tmpDir: box.tmp, timeoutMs: 60_000 },
    );
  const agent = (tls: string[]): ReturnType<typeof runCli> =>
    runCli(
      [
        'agent',
        FIXTURE,
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--etcd',
        'http://127.0.0.1:9',
        '--stages',
        '1',
        ...tls,
      ],
      { tmpDir: box.tmp, timeoutMs: 60_000 },
    );

  it('refuses expired, missing, unparsable, mismatched, misused and half-given files with exit 2, naming flag and file', async () => {
    const garbage = join(box.root, 'garbage.pem');
    await writeFile(garbage, 'not a certificate\n');
    const cases: [() => ReturnType<typeof runCli>, RegExp][] = [
      [() => agent(tlsFlags(certs.expiredClient, certs.ca)), /OMNI_TLS: --tls-cert \S+expired\.crt: expired on /],
      [
        () =>
          agent([
            '--tls-cert',
            certs.client.cert,
            '--tls-key',
            certs.client.key,
            '--tls-ca',
            join(box.root, 'none.pem'),
          ]),
        /OMNI_TLS: --tls-ca \S+none\.pem: does not exist/,
      ],
      [
        () => head(['--tls-cert', certs.server.cert, '--tls-key', certs.server.key, '--tls-ca', garbage]),
        /OMNI_TLS: --tls-ca \S+garbage\.pem: is not a PEM certificate/,
      ],
      [
        () => head(['--tls-cert', certs.server.cert, '--tls-key', certs.client.key, '--tls-ca', certs.ca.cert]),
        /OMNI_TLS: --tls-key \S+agent\.key: is not the private key of \S+head\.crt/,
      ],
      [
        () => up(tlsFlags(certs.clientOnly, certs.ca)),
        /OMNI_TLS: --tls-cert \S+client-only\.crt: its extended key usage does not allow TLS servers/,
      ],
      [
        () => agent(tlsFlags(certs.clientOnly, certs.ca)),
        /OMNI_TLS: --tls-cert \S+client-only\.crt: its extended key usage does not allow TLS servers \(serverAuth is missing\): this host also serves its payloads/,
      ],
      [
        () => head([...tlsFlags(certs.server, certs.ca), '--control-host', '127.0.0.2']),
        /OMNI_TLS: --tls-cert \S+head\.crt: does not name 127\.0\.0\.2/,
      ],
      [
        () => head(['--tls-cert', certs.server.cert, '--tls-ca', certs.ca.cert]),
        /OMNI_USAGE: mutual TLS needs --tls-cert, --tls-key and --tls-ca together; --tls-key is missing/,
      ],
      [
        () => agent(['--tls-key', certs.client.key]),
        /OMNI_USAGE: mutual TLS needs .*; --tls-cert and --tls-ca are missing/,
      ],
    ];
    // One at a time: each is a whole CLI start on a loaded machine.
    for (const [run, message] of cases) {
      const r = await run();
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/hint: /);
      expect(r.stderr).not.toMatch(STACK_LINE);
    }
    // A key others can read is refused too.
    await chmod(certs.client.key, 0o644);
    const open = await agent(tlsFlags(certs.client, certs.ca));
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/OMNI_TLS: --tls-key \S+agent\.key: is readable by group or others/);
    expect(box.runDirLeftovers()).toEqual([]);
  }, 180_000);
});
