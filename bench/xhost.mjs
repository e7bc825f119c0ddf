// The data plane between hosts (docs/scale-out.md, "Payloads across hosts"). Prints two lines:
//   xhost size=64MiB fetch_ms=<f> tcp_copy_ms=<t> ratio_vs_tcp_copy=<t/f> [tls_fetch_ms=<l>]
//   xhost head_cpu_ms_per_request inline_4MiB=<i> direct_4MiB=<d> direct_64MiB=<g>
// Line 1: a 64 MiB payload in shared memory, served by a payload server on 127.0.0.2 (its own
//   process, as an agent's), fetched by a client dialling from 127.0.0.3 (a consumer replica's
//   fetchRemotePayload) into one Buffer, against a plain TCP copy of the same bytes between the
//   same addresses in the same run (server writes them from memory, client reads into a Buffer).
//   Median of 5 each, sha256 checked. Target ratio >= 0.7.
// Line 2: CPU time of the head process (utime + stime from /proc, less what it spends idle over
//   the same time) per request, for a two-stage pipeline whose producer (agent on 127.0.0.2)
//   hands a 16-token latent to a consumer (agent on 127.0.0.3):
//   `inline` is the path before the data plane (the 4 MiB latent inside the control messages,
//   through the head; the largest an inline payload may be), `direct` the data plane (the head
//   carries a reference; the consumer fetches from the producer's host). Needs etcd on the PATH
//   (apt-get install etcd-server); that line is skipped with a message otherwise.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const CORE = join(root, 'packages/core/dist');
const CLI = join(root, 'packages/cli/bin/omnistage.js');
const SIZE = 64 * 1024 * 1024;
const RUNS = 5;
const SECRET = Buffer.from('xhost-bench-secret-0123456789abcdef');
const RUN_ID = 'xhostbench';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sha = (b) => createHash('sha256').update(b).digest('hex');

/** The "producer host": a payload server and a plain TCP server on 127.0.0.2, in this process. */
async function serveRole() {
  const { PayloadServer } = await import(join(CORE, 'cluster/index.js'));
  const { createRunPayloadDir, writePayload } = await import(join(CORE, 'connectors/shm-store.js'));
  const bytes = randomBytes(SIZE);
  const dir = createRunPayloadDir(RUN_ID);
  writePayload(RUN_ID, 'bench_payload', bytes, dir);
  const server = await PayloadServer.start({
    runId: RUN_ID,
    dir,
    secret: SECRET,
    host: '127.0.0.2',
    port: 0,
    warn: (m) => process.stderr.write(`${m}\n`),
  });
  const plain = createServer((s) => s.end(bytes));
  await new Promise((r) => plain.listen(0, '127.0.0.2', r));
  process.stdout.write(`${JSON.stringify({ url: server.url, tcpPort: plain.address().port, sha: sha(bytes), dir })}\n`);
  process.stdin.resume();
  process.stdin.once('end', async () => {
    await server.close();
    plain.close();
    await rm(dir, { recursive: true, force: true });
    process.exit(0);
  });
}

function plainCopy(port) {
  const target = Buffer.allocUnsafeSlow(SIZE);
  return new Promise((resolve, reject) => {
    let filled = 0;
    const s = connect({ host: '127.0.0.2', port, localAddress: '127.0.0.3' });
    s.on('data', (chunk) => {
      chunk.copy(target, filled);
      filled += chunk.length;
    });
    s.once('end', () => (filled === SIZE ? resolve(target) : reject(new Error(`got ${filled} bytes`))));
    s.once('error', reject);
  });
}

async function throughputLine() {
  const { fetchRemotePayload, derivePayloadToken } = await import(join(CORE, 'cluster/index.js'));
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  while (!out.includes('\n')) await sleep(10);
  const info = JSON.parse(out.split('\n')[0]);
  try {
    const access = {
      run_id: RUN_ID,
      token: derivePayloadToken(SECRET, RUN_ID, 'fetch'),
      max_bytes: SIZE,
      timeout_ms: 60_000,
      local_address: '127.0.0.3',
    };
    const ref = { $payload: 1, key: 'bench_payload', size: SIZE, via: 'shm' };
    const origin = { host_id: 'a', url: info.url };
    const fetchMs = [];
    const tcpMs = [];
    for (let i = 0; i < RUNS; i++) {
      // Alternate, so that load on the machine falls on both alike.
      let t = performance.now();
      const got = await fetchRemotePayload(ref, origin, access);
      fetchMs.push(performance.now() - t);
      if (i === 0 && sha(got) !== info.sha) throw new Error('the fetched payload differs from the stored one');
      t = performance.now();
      const copy = await plainCopy(info.tcpPort);
      tcpMs.push(performance.now() - t);
      if (i === 0 && sha(copy) !== info.sha) throw new Error('the plain copy differs from the stored bytes');
    }
    const f = median(fetchMs);
    const c = median(tcpMs);
    console.log(
      `xhost size=64MiB fetch_ms=${f.toFixed(1)} tcp_copy_ms=${c.toFixed(1)} ratio_vs_tcp_copy=${(c / f).toFixed(2)} (target >= 0.7; median of ${RUNS})`,
    );
  } finally {
    child.stdin.end();
    await new Promise((r) => child.once('exit', r));
  }
}

/** CPU seconds (user + system) of a process so far, from /proc. */
async function cpuMs(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks: 100 Hz on Linux
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

function pipelineYaml(hiddenSize, inline) {
  // inline: the edge's threshold at the 4 MiB inline cap, so the latent rides in the control messages.
  const connectors = inline ? `    output_connectors: { to_stage_1: inline_4mib }\n` : '';
  const runtime = inline
    ? `runtime:\n  connectors:\n    inline_4mib:\n      name: SharedMemoryConnector\n      extra: { shm_threshold_bytes: 4194304 }\n`
    : '';
  return `stage_args:
  - stage_id: 0
    stage_type: llm
    runtime: { devices: "0", num_replicas: 0 }
    engine_args:
      model_stage: thinker
      engine_output_type: latent
      hidden_size: ${hiddenSize}
      max_num_seqs: 4
${connectors}    default_sampling_params: { temperature: 0.0, max_tokens: 16, seed: 42 }
  - stage_id: 1
    stage_type: llm
    runtime: { devices: "1", num_replicas: 0 }
    engine_args: { model_stage: talker, max_num_seqs: 4 }
    engine_input_source: [0]
${inline ? '    input_connectors: { from_stage_0: inline_4mib }\n' : ''}    final_output: true
    final_output_type: text
    default_sampling_params: { temperature: 0.0, max_tokens: 4, seed: 42 }
${runtime}`;
}

/** Head CPU ms per request for one pipeline variant, on a fresh head and two agents. */
async function headCpuPerRequest(dir, etcdUrl, name, yaml, requests) {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, yaml);
  const children = [];
  const start = (args) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TMPDIR: dir },
    });
    child.log = '';
    child.stderr.setEncoding('utf8').on('data', (d) => (child.log += d));
    children.push(child);
    return child;
  };
  const common = ['--platform', 'cpu', '--engine', 'reference', '--etcd', etcdUrl, '--lease-ttl', '2'];
  const secret = ['--cluster-secret-file', join(dir, 'secret')];
  try {
    const head = start([
      'serve',
      file,
      ...common,
      ...secret,
      '--head',
      '--port',
      '0',
      '--lock-dir',
      join(dir, 'lh'),
      '--host-id',
      'head',
    ]);
    const run = await waitMatch(head, /head of run (\S+):/);
    for (const [host, addr, stage] of [
      ['a', '127.0.0.2', '0'],
      ['b', '127.0.0.3', '1'],
    ])
      start([
        'agent',
        file,
        ...common,
        ...secret,
        '--run',
        run,
        '--stages',
        stage,
        '--host-id',
        host,
        '--advertise',
        addr,
        '--lock-dir',
        join(dir, `l${host}`),
      ]);
    const url = await waitMatch(head, /at (http:\/\/127\.0\.0\.1:\d+)\/v1/);
    const ask = async () => {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: name, prompt: 'hello' }),
      });
      if (res.status !== 200) throw new Error(`${name}: HTTP ${res.status} ${await res.text()}`);
    };
    await ask(); // warm: connections, pools
    const before = await cpuMs(head.pid);
    const t0 = performance.now();
    for (let i = 0; i < requests; i++) await ask();
    const busy = (await cpuMs(head.pid)) - before;
    const elapsed = performance.now() - t0;
    // What the head spends anyway (etcd keepalives, heartbeats) over as long: not the requests' cost.
    const idleBefore = await cpuMs(head.pid);
    await sleep(elapsed);
    const idle = (await cpuMs(head.pid)) - idleBefore;
    return Math.max(0, busy - idle) / requests;
  } finally {
    for (const c of children.reverse()) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r)))));
  }
}

async function waitMatch(child, re, ms = 120_000) {
  const end = Date.now() + ms;
  for (;;) {
    const m = re.exec(child.log);
    if (m) return m[1];
    if (Date.now() > end || child.exitCode !== null) throw new Error(`no ${re} in:\n${child.log.slice(-2000)}`);
    await sleep(20);
  }
}

async function headCpuLine() {
  if (spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.log('xhost head_cpu skipped: etcd is not installed (apt-get install etcd-server)');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'omnistage-bench-xhost-'));
  await writeFile(join(dir, 'secret'), SECRET);
  await chmod(join(dir, 'secret'), 0o600);
  const [c, p] = [await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${c}`;
  const peer = `http://127.0.0.1:${p}`;
  const etcd = spawn(
    'etcd',
    [
      '--name',
      'x',
      '--data-dir',
      join(dir, 'etcd'),
      '--logger=zap',
      '--log-outputs=stderr',
      '--listen-client-urls',
      etcdUrl,
      '--advertise-client-urls',
      etcdUrl,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `x=${peer}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  etcd.log = '';
  etcd.stderr.setEncoding('utf8').on('data', (d) => (etcd.log += d));
  try {
    await waitMatch(etcd, /(serving client traffic)/, 30_000);
    const n = 20;
    const inline = await headCpuPerRequest(dir, etcdUrl, 'xhost-inline', pipelineYaml(65536, true), n);
    const direct = await headCpuPerRequest(dir, etcdUrl, 'xhost-direct', pipelineYaml(65536, false), n);
    const big = await headCpuPerRequest(dir, etcdUrl, 'xhost-direct-64', pipelineYaml(1048576, false), n);
    console.log(
      `xhost head_cpu_ms_per_request inline_4MiB=${inline.toFixed(1)} direct_4MiB=${direct.toFixed(1)} direct_64MiB=${big.toFixed(1)} (${n} requests each; 16-token latent; /proc utime+stime of the head, less its idle CPU over as long)`,
    );
  } finally {
    etcd.kill('SIGTERM');
    await new Promise((r) => etcd.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--serve')) await serveRole();
else {
  await throughputLine();
  await headCpuLine();
}
