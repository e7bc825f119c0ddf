// HTTP serving benchmark: what `omnistage serve` adds on top of the pipeline, and the machine's
// ceiling for any fastify route.
//
//   npx turbo run build --output-logs=errors-only && node bench/serve.mjs [--n=2000] [--verbose]
//
// Prints, for C in 1, 64, 256 and stream false/true:
//   serve endpoint=chat stream=<bool> concurrency=<C> rps=<x> p50_ms=<y> p99_ms=<z> overhead_p50_ms=<d> cpu_us_per_req=<u> errors=<e>
// and for the ceiling:
//   serve endpoint=bare-fastify stream=false concurrency=<C> rps=<x> p50_ms=<y> p99_ms=<z> cpu_us_per_req=<u> errors=<e>
//
// Pipeline: one `llm` stage, reference engine, max_tokens 1 (instant), brought up with core's
// bringUp() in this process; the server is @omnistage/server's OmniServer on 127.0.0.1:0, as
// `omnistage serve` builds it. Load: a closed loop of C connections (node:http, keep-alive) in a
// child process, each sending
// POST /v1/chat/completions one after another. `cpu_us_per_req`: this process's CPU time
// (process.cpuUsage, user + system, over the run) per request: the server and the router, not the
// replica (its own process) nor the load generator (a child process); at C=256 it is the cost at
// saturation. `overhead_p50_ms` = HTTP p50 minus the p50 of the
// same requests (the same stage input, the same concurrency C) sent in-process through the served
// pipeline's `generate`. Targets: overhead_p50_ms <= 1 at C=64; errors=0 at C=256.
// bare-fastify: a fastify app (same version, logger off) whose POST route returns a constant JSON,
// driven by the same load generator: what this machine can do per request at best.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const paths = {
  core: join(root, 'packages/core/dist/index.js'),
  llm: join(root, 'packages/plugin-llm/dist/index.js'),
  server: join(root, 'packages/server/dist/index.js'),
};
for (const p of Object.values(paths)) {
  if (!existsSync(p)) {
    console.error(`missing ${p}: build first (npx turbo run build)`);
    process.exit(1);
  }
}
const { Omnistage, loadPipelineConfig, planPipeline, bringUp, newRunId } = await import(paths.core);
const { llmPlugin } = await import(paths.llm);
const { OmniServer, servePipeline } = await import(paths.server);
const { pino } = await import('pino');
const { default: Fastify } = await import('fastify');

const argv = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m) {
      console.error(`unknown argument ${a} (use --n=2000 --verbose)`);
      process.exit(2);
    }
    return [m[1], m[2] ?? 'true'];
  }),
);
const N = Number(argv.n ?? 2000);
const verbose = argv.verbose === 'true';
const CONCURRENCY = [1, 64, 256];

const pct = (xs, p) => {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
};
const fmt = (x) => x.toFixed(3);

/** The load generator, in a child process: C keep-alive connections in a closed loop. */
const LOADGEN = `
const http = require('node:http');
process.once('message', (job) => run(job));
function run({ url, path, body, concurrency, n, stream }) {
const { hostname, port } = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const payload = Buffer.from(JSON.stringify(body));
function once() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request({ host: hostname, port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        const ok = res.statusCode === 200 && (stream ? text.endsWith('data: [DONE]\\n\\n') : text.length > 0);
        resolve({ ms: performance.now() - t0, ok, status: res.statusCode });
      });
    });
    req.on('error', (err) => resolve({ ms: performance.now() - t0, ok: false, status: String(err.code) }));
    req.end(payload);
  });
}
(async () => {
  let next = 0;
  const lat = [];
  const errors = {};
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++;
      const r = await once();
      lat.push(r.ms);
      if (!r.ok) errors[r.status] = (errors[r.status] ?? 0) + 1;
    }
  }));
  const wall = performance.now() - t0;
  agent.destroy();
  process.send({ lat, errors, wall }, () => process.exit(0));
})();
}
`;

/**
 * Runs the load generator in a child process, so that this process's CPU time (process.cpuUsage)
 * is the server's alone; resolves with its figures and `cpu_us_per_req`, this process's user +
 * system CPU over the run divided by the requests.
 */
function load(url, path, body, concurrency, n, stream) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', LOADGEN], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let cpu0 = null;
    child.once('spawn', () => {
      cpu0 = process.cpuUsage();
      child.send({ url, path, body, concurrency, n, stream });
    });
    child.once('message', (r) => {
      const cpu = process.cpuUsage(cpu0);
      resolve({ ...r, cpuPerReq: (cpu.user + cpu.system) / n });
    });
    child.once('error', reject);
  });
}

/** The same requests in-process: C concurrent loops over the served pipeline's generate. */
async function inProcess(served, input, concurrency, n) {
  let next = 0;
  let seq = 0;
  const lat = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const t0 = performance.now();
        const ac = new AbortController();
        for await (const _ of served.generate(input, {
          requestId: `b${seq++}`,
          signal: ac.signal,
          params: {},
          finalStages: [0],
        }))
          void _;
        lat.push(performance.now() - t0);
      }
    }),
  );
  return lat;
}

const PIPELINE = `
stage_args:
  - stage_id: 0
    stage_type: llm
    engine: reference
    runtime:
      devices: "0"
    engine_args:
      model_stage: instant
    final_output: true
    final_output_type: text
    default_sampling_params:
      temperature: 0.0
      max_tokens: 1
      seed: 1
`;

const dir = await mkdtemp(join(tmpdir(), 'omnistage-bench-serve-'));
const omni = new Omnistage({ plugins: [llmPlugin()], lockDir: join(dir, 'locks') });
const runId = newRunId();
const config = await loadPipelineConfig({ text: PIPELINE, path: join(dir, 'pipeline.yaml') }, { platform: 'cpu' });
const plan = await planPipeline(omni, config, { platform: 'cpu', runId, purpose: 'launch' });
const pipeline = await bringUp(omni, plan);
const served = servePipeline(omni, pipeline);
const server = new OmniServer({ logger: pino({ level: 'warn' }), servedModelName: 'bench', maxInflight: 4096 });
server.attach(served);
const url = await server.listen('127.0.0.1', 0);

const bare = Fastify({ logger: false });
bare.post('/const', async () => ({ ok: true }));
await bare.listen({ host: '127.0.0.1', port: 0 });
const bareUrl = `http://127.0.0.1:${bare.server.address().port}`;

// What the chat route sends to stage 0 for this body (chat-input.ts renders "role: text" lines).
const body = { model: 'bench', messages: [{ role: 'user', content: 'hello' }], modalities: ['text'] };
const input = { prompt: 'user: hello', messages: [{ role: 'user', content: 'hello' }] };
let failed = false;
try {
  // Warm-up: JIT, connections, the worker's first requests.
  await inProcess(served, input, 8, 300);
  await load(url, '/v1/chat/completions', body, 8, 300, false);
  await load(bareUrl, '/const', {}, 8, 300, false);
  for (const concurrency of CONCURRENCY) {
    const n = Math.max(N, concurrency * 20);
    const base = await inProcess(served, input, concurrency, n);
    const baseP50 = pct(base, 0.5);
    if (verbose)
      console.log(`inprocess concurrency=${concurrency} n=${n} p50_ms=${fmt(baseP50)} p99_ms=${fmt(pct(base, 0.99))}`);
    for (const stream of [false, true]) {
      const r = await load(url, '/v1/chat/completions', { ...body, stream }, concurrency, n, stream);
      const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
      if (errors > 0) failed = failed || concurrency === 256;
      console.log(
        `serve endpoint=chat stream=${stream} concurrency=${concurrency} rps=${Math.round((n / r.wall) * 1000)} p50_ms=${fmt(pct(r.lat, 0.5))} p99_ms=${fmt(pct(r.lat, 0.99))} overhead_p50_ms=${fmt(pct(r.lat, 0.5) - baseP50)} cpu_us_per_req=${Math.round(r.cpuPerReq)} errors=${errors}` +
          (errors > 0 ? ` error_statuses=${JSON.stringify(r.errors)}` : ''),
      );
    }
    const b = await load(bareUrl, '/const', {}, concurrency, n, false);
    const bareErrors = Object.values(b.errors).reduce((a, c) => a + c, 0);
    console.log(
      `serve endpoint=bare-fastify stream=false concurrency=${concurrency} rps=${Math.round((n / b.wall) * 1000)} p50_ms=${fmt(pct(b.lat, 0.5))} p99_ms=${fmt(pct(b.lat, 0.99))} cpu_us_per_req=${Math.round(b.cpuPerReq)} errors=${bareErrors}`,
    );
  }
} finally {
  await server.drain(10_000);
  await server.close();
  await bare.close();
  await pipeline.stop('bench finished');
  await rm(dir, { recursive: true, force: true });
}
if (failed) {
  console.error('serve: errors at concurrency 256 (target: none)');
  process.exitCode = 1;
}
