// Scale-out benchmark: a real etcd, a head (`omnistage serve --head`) and agents on this machine,
// lease TTL 2 s. Prints one line:
//   dist ttl_s=2 attach_ms=<x> detach_kill_ms=<y> detach_partition_ms=<p> detach_revoke_ms=<z>
// attach_ms: from the head taking a remote replica into its stage's pool (`replica:attached`, at
//   its `ready`) to the first request the head routes to it, under a continuous request stream
//   (target <= 200).
// detach_kill_ms: SIGKILL of the replica's agent to `replica:detached` (target <= TTL + 1000).
// detach_partition_ms: SIGSTOP of the agent and its replica (no FIN) to `replica:detached`
//   (the lease expiry path; expected TTL - TTL/3 .. TTL + 500).
// detach_revoke_ms: SIGTERM of the agent (clean shutdown) to `replica:detached` (target <= 100).
// Hosts are agents on their own loopback addresses (b on 127.0.0.3; a, a2, a3 on 127.0.0.2): their
// replicas dial the head from them. No traffic leaves 127.0.0.0/8.
// Needs `etcd` on the PATH (apt-get install etcd-server); skipped with a message otherwise.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(root, 'packages/cli/bin/omnistage.js');
const FIXTURE = join(root, 'packages/cli/test/fixtures/head-three-stage.yaml');
if (spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status !== 0) {
  console.log('dist skipped: etcd is not installed (apt-get install etcd-server)');
  process.exit(0);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (pred, ms, what) => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
};
const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const dir = await mkdtemp(join(tmpdir(), 'omnistage-bench-dist-'));
const children = [];
const start = (cmd, args) => {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: dir } });
  child.log = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (child.log += d));
  child.done = new Promise((resolve) => child.once('exit', resolve));
  children.push(child);
  return child;
};
const events = async () =>
  (await readFile(join(dir, 'events.jsonl'), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      try {
        return [JSON.parse(l)];
      } catch {
        return [];
      }
    });
const find = async (pred) => (await events()).find(pred);

try {
  const [c, p] = [await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${c}`;
  const etcd = start('etcd', [
    '--name',
    'b',
    '--data-dir',
    join(dir, 'etcd'),
    '--logger=zap',
    '--log-outputs=stderr',
    '--listen-client-urls',
    etcdUrl,
    '--advertise-client-urls',
    etcdUrl,
    '--listen-peer-urls',
    `http://127.0.0.1:${p}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${p}`,
    '--initial-cluster',
    `b=http://127.0.0.1:${p}`,
  ]);
  await until(() => etcd.log.includes('serving client traffic'), 20_000, 'etcd');
  const secret = join(dir, 'secret');
  await writeFile(secret, 'bench-secret-0123456789abcdef');
  await chmod(secret, 0o600);
  const common = [
    '--platform',
    'cpu',
    '--engine',
    'reference',
    '--etcd',
    etcdUrl,
    '--lease-ttl',
    '2',
    '--cluster-secret-file',
    secret,
    '--log-format',
    'json',
  ];
  const head = start(process.execPath, [
    CLI,
    'serve',
    FIXTURE,
    ...common,
    '--head',
    '--port',
    '0',
    '--lock-dir',
    join(dir, 'locks'),
    '--events',
    join(dir, 'events.jsonl'),
    '--host-id',
    'head',
  ]);
  const agent = (id, address) =>
    start(process.execPath, [
      CLI,
      'agent',
      FIXTURE,
      ...common,
      '--stages',
      '1',
      '--host-id',
      id,
      '--advertise',
      address,
      '--lock-dir',
      join(dir, `locks-${id}`),
    ]);
  agent('b', '127.0.0.3');
  // JSON logs escape the quotes around the model name.
  const SERVING = /serving \\?".*?\\?" at (http:\/\/127\.0\.0\.1:\d+)/;
  await until(() => SERVING.test(head.log), 60_000, 'the head to serve');
  const url = SERVING.exec(head.log)[1];
  let streaming = true;
  const stream = Promise.all(
    [0, 1].map(async () => {
      while (streaming)
        await fetch(`${url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"model":"head-three-stage","prompt":"hi","max_tokens":1}',
        })
          .then((r) => r.text())
          .catch(() => undefined);
    }),
  );

  const a = agent('a', '127.0.0.2');
  await until(
    async () => (await find((e) => e.type === 'replica:attached' && e.host_id === 'a')) !== undefined,
    60_000,
    'agent a to attach',
  );
  const attached = await find((e) => e.type === 'replica:attached' && e.host_id === 'a');
  await until(
    async () =>
      (await find(
        (e) =>
          e.type === 'request:dispatched' &&
          e.stage_id === 1 &&
          e.replica_id === attached.replica_id &&
          e.ts >= attached.ts,
      )) !== undefined,
    10_000,
    'a request on the new replica',
  );
  const firstRouted = await find(
    (e) =>
      e.type === 'request:dispatched' &&
      e.stage_id === 1 &&
      e.replica_id === attached.replica_id &&
      e.ts >= attached.ts,
  );
  const attachMs = firstRouted.ts - attached.ts;
  if (attached.peer_address !== '127.0.0.2')
    throw new Error(`agent a's replica connected from ${attached.peer_address}, not 127.0.0.2`);

  const detachAfter = async (signalIt, since, host) => {
    const t0 = Date.now();
    signalIt();
    await until(
      async () =>
        (await find((e) => e.type === 'replica:detached' && e.host_id === host && e.ts >= since)) !== undefined,
      15_000,
      `${host} to detach`,
    );
    return (await find((e) => e.type === 'replica:detached' && e.host_id === host && e.ts >= since)).ts - t0;
  };
  const killMs = await detachAfter(() => a.kill('SIGKILL'), Date.now(), 'a');

  const a2 = agent('a2', '127.0.0.2');
  await until(
    async () => (await find((e) => e.type === 'replica:attached' && e.host_id === 'a2')) !== undefined,
    60_000,
    'agent a2 to attach',
  );
  const replicaPid = Number(/started \(pid (\d+)/.exec(a2.log)[1]);
  const partitionMs = await detachAfter(
    () => {
      a2.kill('SIGSTOP');
      process.kill(-replicaPid, 'SIGSTOP');
    },
    Date.now(),
    'a2',
  );
  a2.kill('SIGKILL');
  process.kill(-replicaPid, 'SIGKILL');

  const a3 = agent('a3', '127.0.0.2');
  await until(
    async () => (await find((e) => e.type === 'replica:attached' && e.host_id === 'a3')) !== undefined,
    60_000,
    'agent a3 to attach',
  );
  const revokeMs = await detachAfter(() => a3.kill('SIGTERM'), Date.now(), 'a3');
  streaming = false;
  await stream;
  console.log(
    `dist ttl_s=2 attach_ms=${attachMs} detach_kill_ms=${killMs} detach_partition_ms=${partitionMs} detach_revoke_ms=${revokeMs}`,
  );
  head.kill('SIGTERM');
  await Promise.race([head.done, sleep(10_000)]);
} finally {
  for (const child of children.reverse())
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await sleep(200);
  await rm(dir, { recursive: true, force: true });
}
