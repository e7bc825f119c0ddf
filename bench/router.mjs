// Router overhead benchmark: what PipelineRouter adds per stage hop, against driving the very same
// workers by hand over the control protocol.
//
//   npx turbo run build --output-logs=errors-only && node bench/router.mjs [--n=200] [--verbose]
//
// Prints, among other lines:
//   router hops=3 p50_added_ms_per_hop=<x>          target: <= 1 ms
//
// router: a 3-stage pipeline (0 -> 1 -> 2) of reference LLM engines with instant generation
//   (max_tokens 2, no token delay), brought up with bringUp(); one request at a time goes through
//   `createRouter(pipeline).generate()` and is timed until its stream ends.
// direct: three more reference workers, spawned by this script with the worker spec the planner
//   produced for the same stages (same command, env, engine args and welcome metadata, so they do
//   the same work), attached to a minimal node:net Unix-socket server doing hello/welcome/ready.
//   A request is sent to stage 0's worker; its final output's `data` is sent as the input of stage
//   1, and so on (what the router's default input processor does); timed until stage 2's final.
// Requests alternate router/direct so drift on the shared host hits both alike; after warm-up, the
// median (p50) of n requests each is taken and x = (p50_router - p50_direct) / 3.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const corePath = join(root, 'packages/core/dist/index.js');
const llmPath = join(root, 'packages/plugin-llm/dist/index.js');
for (const p of [corePath, llmPath]) {
  if (!existsSync(p)) {
    console.error(`missing ${p}: build first (npx turbo run build)`);
    process.exit(1);
  }
}
const { Omnistage, loadPipelineConfig, planPipeline, bringUp, newRunId, createRouter } = await import(corePath);
const { llmPlugin } = await import(llmPath);

const argv = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m) {
      console.error(`unknown argument ${a} (use --n=200 --verbose)`);
      process.exit(2);
    }
    return [m[1], m[2] ?? 'true'];
  }),
);
const N = Number(argv.n ?? 200);
const WARMUP = 30;
const HOPS = 3;
const verbose = argv.verbose === 'true';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const fmt = (x) => x.toFixed(3);
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
};

const PIPELINE = `
stage_args:
${[0, 1, 2]
  .map(
    (i) => `  - stage_id: ${i}
    stage_type: llm
    engine: reference
    runtime:
      devices: "${i}"
    engine_args:
      model_stage: hop${i}
    ${i > 0 ? `engine_input_source: [${i - 1}]` : ''}
    ${i === 2 ? 'final_output: true' : ''}
    default_sampling_params:
      temperature: 0.0
      max_tokens: 2
      seed: 1
`,
  )
  .join('\n')}`;

/** The hand-rolled side: a Unix-socket server and the three workers it drives. */
async function startDirect(plan, dir) {
  const socketPath = join(dir, 'direct.sock');
  const runId = `direct-${randomBytes(4).toString('hex')}`;
  const expected = new Map(); // token -> { replica, resolve }
  const sockets = new Set();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setNoDelay?.(true);
    let buf = '';
    let me = null;
    socket.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === '') continue;
        const msg = JSON.parse(line);
        if (me === null) {
          if (msg.type !== 'hello' || !expected.has(msg.token)) return void socket.destroy();
          me = expected.get(msg.token);
          expected.delete(msg.token);
          me.socket = socket;
          const r = me.replica;
          const welcome = {
            type: 'welcome',
            v: 1,
            run_id: runId,
            stage_id: r.stage_id,
            replica_id: r.replica_id,
            engine_args: JSON.parse(JSON.stringify(r.engine_args)),
            metadata: JSON.parse(JSON.stringify({ ...r.metadata, runtime_cfg: null })),
          };
          socket.write(`${JSON.stringify(welcome)}\n`);
        } else if (msg.type === 'ready') {
          me.resolve(me);
        } else if (msg.type === 'output') {
          me.onOutput?.(msg);
        } else if (msg.type === 'request_error') {
          me.onError?.(new Error(msg.message));
        }
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  const replicas = plan.stages.map((s) => s.replicas[0]);
  const children = [];
  const workers = await Promise.all(
    replicas.map((r) => {
      const token = randomBytes(16).toString('hex');
      const ready = new Promise((resolve) => expected.set(token, { replica: r, resolve }));
      const child = spawn(r.worker.command, r.worker.args, {
        env: {
          ...process.env,
          ...r.worker.env,
          OMNISTAGE_CONTROL: socketPath,
          OMNISTAGE_TOKEN: token,
          OMNISTAGE_STAGE_ID: String(r.stage_id),
          OMNISTAGE_REPLICA_ID: String(r.replica_id),
          OMNISTAGE_RUN_ID: runId,
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      child.exitedP = new Promise((resolve) => child.once('exit', resolve));
      child.stdout.resume();
      child.stderr.resume();
      child.stdin.on('error', () => undefined);
      children.push(child);
      return ready;
    }),
  );
  let seq = 0;
  /** One request through the three workers, stage by stage. */
  const request = async (input) => {
    let data = input;
    for (const w of workers) {
      const request_id = `d${seq++}`;
      data = await new Promise((resolve, reject) => {
        w.onOutput = (m) => {
          if (m.request_id === request_id && m.done) resolve(m.data);
        };
        w.onError = reject;
        w.socket.write(`${JSON.stringify({ type: 'request', request_id, input: data, params: {} })}\n`);
      });
    }
    return data;
  };
  const stop = async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exitedP));
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(() => resolve()));
  };
  return { request, stop, pids: children.map((c) => c.pid) };
}

const dir = await mkdtemp(join(tmpdir(), 'omnistage-bench-router-'));
const lockDir = join(dir, 'locks');
const omni = new Omnistage({ plugins: [llmPlugin()], lockDir });
const pids = new Set();
omni.events.on('replica:spawned', (e) => pids.add(e.pid));
let pipeline;
let direct;
try {
  const config = await loadPipelineConfig(
    { text: PIPELINE, path: join(dir, 'router-bench.yaml') },
    { platform: 'cpu' },
  );
  const runId = newRunId();
  const plan = await planPipeline(omni, config, {
    platform: 'cpu',
    env: { ...process.env, OMNISTAGE_VISIBLE_DEVICES: '0,1,2' },
    purpose: 'launch',
    runId,
  });
  pipeline = await bringUp(omni, plan);
  direct = await startDirect(plan, dir);
  for (const pid of direct.pids) pids.add(pid);
  const router = createRouter(pipeline);

  const viaRouter = async (input) => {
    let last = null;
    for await (const out of router.generate(input)) if (out.kind === 'final') last = out.data;
    return last;
  };
  // Same answer both ways, or the comparison means nothing.
  const a = await viaRouter('check the answer');
  const b = await direct.request('check the answer');
  if (JSON.stringify(a) !== JSON.stringify(b))
    throw new Error(`router and direct disagree: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);

  const routerMs = [];
  const directMs = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const input = `request number ${i}`;
    const order = i % 2 === 0 ? ['router', 'direct'] : ['direct', 'router'];
    for (const which of order) {
      const t0 = performance.now();
      if (which === 'router') await viaRouter(input);
      else await direct.request(input);
      const ms = performance.now() - t0;
      if (i >= WARMUP) (which === 'router' ? routerMs : directMs).push(ms);
    }
  }
  const pr = median(routerMs);
  const pd = median(directMs);
  if (verbose) {
    console.log(`router_ms p50=${fmt(pr)} p90=${fmt(pct(routerMs, 0.9))} min=${fmt(Math.min(...routerMs))}`);
    console.log(`direct_ms p50=${fmt(pd)} p90=${fmt(pct(directMs, 0.9))} min=${fmt(Math.min(...directMs))}`);
  }
  console.log(`requests n=${N} p50_router_ms=${fmt(pr)} p50_direct_ms=${fmt(pd)}`);
  console.log(`router hops=${HOPS} p50_added_ms_per_hop=${fmt((pr - pd) / HOPS)}`);
} finally {
  await direct?.stop().catch((e) => console.error(`stopping the direct workers failed: ${e.message}`));
  await pipeline?.stop('bench done').catch((e) => console.error(`teardown failed: ${e.message}`));
  await rm(dir, { recursive: true, force: true });
  await new Promise((r) => setTimeout(r, 200));
  const left = [...pids].filter(alive);
  if (left.length > 0 || (pipeline && existsSync(pipeline.runDir))) {
    console.error(
      `LEFTOVERS: pids=[${left.join(',')}] runDir=${pipeline && existsSync(pipeline.runDir) ? pipeline.runDir : '-'}`,
    );
    process.exitCode = 1;
  }
}
