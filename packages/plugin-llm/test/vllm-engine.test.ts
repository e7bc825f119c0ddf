/**
 * `engine: vllm` end to end with real processes: plan → bring up (spawn `vllm serve` through the
 * group shim, attach over HTTP) → stream completions → tear down, against the stand-in `vllm`
 * (fixtures/fake-vllm.mjs), which records its argv and env and serves the OpenAI endpoints.
 */
import { readdir } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { Omnistage, bringUp, loadPipelineConfig, planPipeline } from '@omnistage/core';
import type {
  InitPlan,
  PlanOptions,
  ReplicaConnection,
  ReplicaOutputChunk,
  ReplicaProcessHandle,
  ReplicaRuntime,
  RunningPipeline,
} from '@omnistage/core';
import { afterEach, describe, expect, it } from 'vitest';
import { LLM_PLUGIN_NAME, llmPlugin } from '../src/llm-plugin.js';
import { deriveVllmServeArgv } from '../src/vllm-serve-argv.js';
import {
  FAKE_VLLM,
  alive,
  canBind,
  eventually,
  freeBasePort,
  killLeftovers,
  readEvents,
  readRecords,
  removeDir,
  tempDir,
  type FakeVllmRecord,
  rejection,
} from './vllm-fixture.js';

const MODEL = 'facebook/opt-125m';
const TIMEOUT = 30_000;

const TWO_STAGES = `
stage_args:
  - stage_id: 0
    stage_type: llm
    engine: vllm
    runtime:
      devices: "0,1"
      num_replicas: 2
      env: { VLLM_LOGGING_LEVEL: DEBUG }
    engine_args:
      model_stage: thinker
      engine_output_type: text
      max_num_seqs: 4
      enforce_eager: true
      gpu_memory_utilization: 0.5
      max_model_len: 512
      enable_prefix_caching: false
      init_delay_ms: 5
    default_sampling_params: { temperature: 0.0, max_tokens: 8, seed: 7 }
  - stage_id: 1
    stage_type: llm
    engine: vllm
    engine_input_source: [0]
    final_output: true
    runtime:
      devices: "2"
    engine_args:
      model_stage: talker
      worker_type: generation
      served_model_name: talker-model
      tensor_parallel_size: 1
    default_sampling_params: { max_tokens: 5 }
`;

/** One stage, one replica; `env` lines go to runtime.env (they reach the fake's process). */
function oneStage(env: Record<string, string | number> = {}, engineArgs = 'max_num_seqs: 2'): string {
  const envLine = Object.keys(env).length === 0 ? '' : `      env: ${JSON.stringify(env)}\n`;
  return `stage_args:
  - stage_id: 0
    engine: vllm
    runtime:
      devices: "0"
${envLine}    engine_args:
      ${engineArgs}
`;
}

interface Up {
  plan: InitPlan;
  pipeline: RunningPipeline;
  runId: string;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A fresh record dir, lock dir and Omnistage with the llm plugin pointed at the fake. */
async function setup(basePortOffsets?: number[]) {
  const recordDir = await tempDir('fake-vllm-rec-');
  const lockDir = await tempDir('fake-vllm-locks-');
  const basePort = await freeBasePort(basePortOffsets);
  const seen = new Set<number>();
  cleanups.push(async () => {
    for (const r of (await readRecords(recordDir).catch(() => new Map<number, FakeVllmRecord>())).values())
      seen.add(r.pid);
    killLeftovers(seen);
    await removeDir(recordDir);
    await removeDir(lockDir);
  });
  const omni = new Omnistage({ plugins: [llmPlugin({ vllmCommand: FAKE_VLLM, vllmBasePort: basePort })], lockDir });
  const previous = process.env['FAKE_VLLM_RECORD_DIR'];
  // The fake reads its record dir from the environment it inherits from the launcher.
  process.env['FAKE_VLLM_RECORD_DIR'] = recordDir;
  cleanups.push(async () => {
    if (previous === undefined) delete process.env['FAKE_VLLM_RECORD_DIR'];
    else process.env['FAKE_VLLM_RECORD_DIR'] = previous;
  });
  return { omni, recordDir, lockDir, basePort };
}

async function up(
  omni: Omnistage,
  text: string,
  plan: PlanOptions = {},
  opts: { stageInitTimeoutS?: number; signal?: AbortSignal } = {},
): Promise<Up> {
  const runId = `test-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const config = await loadPipelineConfig({ text, path: '/cfg/vllm-pipeline.yaml' });
  const initPlan = await planPipeline(omni, config, {
    platform: 'cpu',
    model: MODEL,
    purpose: 'launch',
    runId,
    ...plan,
  });
  const pipeline = await bringUp(omni, initPlan, { stopGraceMs: 2_000, ...opts });
  cleanups.push(() => pipeline.stop('test cleanup'));
  return { plan: initPlan, pipeline, runId };
}

function connectionOf(pipeline: RunningPipeline, stageId: number, replicaId = 0): ReplicaConnection {
  const r = pipeline.replicas.find((x) => x.plan.stage_id === stageId && x.plan.replica_id === replicaId);
  expect(r?.connection).toBeTruthy();
  return r!.connection!;
}

async function collect(stream: AsyncIterable<ReplicaOutputChunk>): Promise<ReplicaOutputChunk[]> {
  const out: ReplicaOutputChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

/** The words after `--flag` in an argv (bare flag: []), or undefined when absent. */
function flagValue(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i < 0 ? undefined : argv[i + 1];
}

describe('engine vllm: bring-up against a stand-in vllm serve', () => {
  it(
    'starts one `vllm serve` per replica with the derived argv, distinct ports and the planned env',
    async () => {
      const { omni, recordDir, basePort } = await setup();
      const { plan, pipeline, runId } = await up(omni, TWO_STAGES);
      const records = await readRecords(recordDir);
      const replicas = plan.stages.flatMap((s) => s.replicas.map((r) => ({ ...r, stage_idx: s.stage_idx })));
      expect(replicas.map((r) => [r.stage_id, r.replica_id])).toEqual([
        [0, 0],
        [0, 1],
        [1, 0],
      ]);
      expect([...records.keys()].sort((a, b) => a - b)).toEqual([basePort, basePort + 1, basePort + 100]);

      for (const r of replicas) {
        const port = basePort + 100 * r.stage_idx + r.replica_id;
        const rec = records.get(port)!;
        expect(rec, `record of stage ${r.stage_id} replica ${r.replica_id}`).toBeDefined();
        // What the process received is exactly what the plan says, and what the argv rules derive.
        expect(r.worker.command).toBe(FAKE_VLLM);
        expect(rec.argv).toEqual(r.worker.args);
        expect([FAKE_VLLM, ...rec.argv]).toEqual(
          deriveVllmServeArgv(r.engine_args, { model: MODEL, port, executable: FAKE_VLLM }).argv,
        );
        expect(rec.argv.slice(0, 6)).toEqual(['serve', MODEL, '--host', '127.0.0.1', '--port', String(port)]);
        expect(rec.host).toBe('127.0.0.1');
        // omnistage-only keys never reach vllm; the launcher owns model/host/port (given once).
        for (const omniOnly of [
          '--model-stage',
          '--stage-id',
          '--engine-output-type',
          '--worker-type',
          '--init-delay-ms',
          '--model',
          '--has-sampling-extra-args',
          '--async-chunk',
        ]) {
          expect(rec.argv, omniOnly).not.toContain(omniOnly);
        }
        expect(rec.argv.filter((w) => w === '--port')).toHaveLength(1);
        // Identity and device env, per replica.
        expect(rec.env['OMNISTAGE_RUN_ID']).toBe(runId);
        expect(rec.env['OMNISTAGE_STAGE_ID']).toBe(String(r.stage_id));
        expect(rec.env['OMNISTAGE_REPLICA_ID']).toBe(String(r.replica_id));
        expect(rec.env['OMNISTAGE_VISIBLE_DEVICES']).toBe(r.physical_devices.join(','));
      }
      const s0r0 = records.get(basePort)!.argv;
      const s0r1 = records.get(basePort + 1)!.argv;
      const s1r0 = records.get(basePort + 100)!.argv;
      // Stage 0: engine args become flags.
      expect(flagValue(s0r0, '--max-num-seqs')).toBe('4');
      expect(flagValue(s0r0, '--gpu-memory-utilization')).toBe('0.5');
      expect(flagValue(s0r0, '--max-model-len')).toBe('512');
      expect(s0r0).toContain('--enforce-eager');
      expect(s0r0).toContain('--no-enable-prefix-caching');
      expect(s0r0).not.toContain('--enable-prefix-caching');
      expect(s0r0).not.toContain('--worker-cls'); // no worker_type, no worker class
      // The two replicas of stage 0 differ only in their port.
      expect(s0r1).toEqual(s0r0.map((w) => (w === String(basePort) ? String(basePort + 1) : w)));
      // Stage 1 (a generation worker): prefix caching off and hybrid KV manager off, served under its own name.
      expect(s1r0).toContain('--no-enable-prefix-caching');
      expect(s1r0).toContain('--disable-hybrid-kv-cache-manager');
      expect(flagValue(s1r0, '--served-model-name')).toBe('talker-model');
      expect(flagValue(s1r0, '--tensor-parallel-size')).toBe('1');
      expect(flagValue(s1r0, '--worker-cls')).toMatch(/Generation/); // worker_type: generation resolved
      // Devices: one virtual device per replica; runtime.env and derived VLLM_* env reach the process.
      expect(records.get(basePort)!.env['OMNISTAGE_VISIBLE_DEVICES']).toBe('0');
      expect(records.get(basePort + 1)!.env['OMNISTAGE_VISIBLE_DEVICES']).toBe('1');
      expect(records.get(basePort + 100)!.env['OMNISTAGE_VISIBLE_DEVICES']).toBe('2');
      expect(records.get(basePort)!.env['VLLM_LOGGING_LEVEL']).toBe('DEBUG');
      expect(records.get(basePort)!.env['VLLM_ALLOW_LONG_MAX_MODEL_LEN']).toBe('1');
      expect(records.get(basePort + 100)!.env['VLLM_ALLOW_LONG_MAX_MODEL_LEN']).toBeUndefined();

      // Attach: the connection reports what /v1/models listed.
      expect(connectionOf(pipeline, 0).info).toMatchObject({
        engine: 'vllm',
        models: [MODEL],
        base_url: `http://127.0.0.1:${basePort}`,
      });
      expect(connectionOf(pipeline, 1).info).toMatchObject({ models: ['talker-model'], model: 'talker-model' });

      // Teardown leaves nothing: neither the fakes nor the group shims.
      const pids = [...records.values()].map((r) => r.pid);
      const shims = pipeline.replicas.map((r) => r.process.pid);
      expect(pids.every(alive)).toBe(true);
      await pipeline.stop();
      expect(await eventually(() => [...pids, ...shims].every((p) => !alive(p)))).toBe(true);
      // ...and the ports are free again.
      expect(await Promise.all([basePort, basePort + 1, basePort + 100].map(canBind))).toEqual([true, true, true]);
    },
    TIMEOUT,
  );

  it(
    'on a cuda plan, each replica gets CUDA_VISIBLE_DEVICES of its physical devices',
    async () => {
      const { omni, recordDir, basePort } = await setup();
      const text = `stage_args:
  - stage_id: 0
    engine: vllm
    runtime: { devices: "0,1", num_replicas: 2 }
    engine_args: { tensor_parallel_size: 1, max_num_seqs: 4 }
  - stage_id: 1
    engine: vllm
    engine_input_source: [0]
    runtime: { devices: "2,3" }
    engine_args: { tensor_parallel_size: 2 }
`;
      const env = { ...process.env, CUDA_VISIBLE_DEVICES: '4,5,6,7' };
      const { pipeline } = await up(omni, text, { platform: 'cuda', env });
      const records = await readRecords(recordDir);
      expect(records.get(basePort)!.env['CUDA_VISIBLE_DEVICES']).toBe('4');
      expect(records.get(basePort + 1)!.env['CUDA_VISIBLE_DEVICES']).toBe('5');
      expect(records.get(basePort + 100)!.env['CUDA_VISIBLE_DEVICES']).toBe('6,7');
      expect(flagValue(records.get(basePort + 100)!.argv, '--tensor-parallel-size')).toBe('2');
      await pipeline.stop();
    },
    TIMEOUT,
  );

  it(
    'an explicit engine_args.port is used (+ replica id) and never passed twice',
    async () => {
      const { omni, recordDir } = await setup();
      const port = await freeBasePort([0, 1]);
      const text = `stage_args:
  - stage_id: 0
    engine: vllm
    runtime: { devices: "0,1", num_replicas: 2 }
    engine_args: { port: ${port}, host: 0.0.0.0 }
`;
      const { pipeline } = await up(omni, text);
      const records = await readRecords(recordDir);
      expect([...records.keys()].sort()).toEqual([port, port + 1]);
      for (const rec of records.values()) {
        expect(rec.argv.filter((w) => w === '--port')).toHaveLength(1);
        expect(rec.argv.filter((w) => w === '--host')).toHaveLength(1);
        expect(rec.host).toBe('127.0.0.1');
      }
      await pipeline.stop();
    },
    TIMEOUT,
  );
});

describe('engine vllm: a port another program holds', () => {
  it(
    'fails the replica before starting vllm (OMNI_PORT_IN_USE) instead of attaching to the foreign server',
    async () => {
      const { omni, recordDir, lockDir, basePort } = await setup([0]);
      // Another server on the replica's port that even answers like vLLM: attaching to it would
      // route requests to the wrong model while the real replica dies on EADDRINUSE later.
      const foreign = createHttpServer((_req, res) => res.end(JSON.stringify({ data: [{ id: 'someone-else' }] })));
      await new Promise<void>((resolve) => foreign.listen(basePort, '127.0.0.1', resolve));
      cleanups.push(() => new Promise<void>((resolve) => foreign.close(() => resolve())));
      const text = `stage_args:
  - stage_id: 0
    engine: vllm
    runtime: { devices: "0" }
    engine_args: { max_num_seqs: 4 }
`;
      const err = await rejection(up(omni, text));
      expect(err.code).toBe('OMNI_PORT_IN_USE');
      expect(err.message).toContain(`stage 0 replica 0: port ${basePort} is already in use`);
      expect(err.context).toMatchObject({ stage_id: 0, replica_id: 0, phase: 'spawn', port: basePort });
      expect(err.hint).toContain('engine_args.port');
      expect((await readRecords(recordDir)).size).toBe(0); // no vllm was started
      expect((await readdir(lockDir)).filter((n) => !n.startsWith('.'))).toEqual([]); // its device lock was released
    },
    TIMEOUT,
  );
});

describe('engine vllm: the executable', () => {
  it(
    'comes from OMNISTAGE_VLLM_COMMAND when the plugin option is not set',
    async () => {
      const { recordDir, lockDir, basePort } = await setup();
      const omni = new Omnistage({ plugins: [llmPlugin({ vllmBasePort: basePort })], lockDir });
      const { plan, pipeline } = await up(omni, oneStage(), {
        env: { ...process.env, OMNISTAGE_VLLM_COMMAND: FAKE_VLLM },
      });
      expect(plan.stages[0]!.replicas[0]!.worker.command).toBe(FAKE_VLLM);
      const rec = (await readRecords(recordDir)).get(basePort)!;
      expect(rec.argv).toEqual([
        'serve',
        MODEL,
        '--host',
        '127.0.0.1',
        '--port',
        String(basePort),
        '--max-num-seqs',
        '2',
      ]);
      await pipeline.stop();
    },
    TIMEOUT,
  );
});

describe('engine vllm: requests over /v1/completions', () => {
  it(
    'streams token chunks and a final chunk shaped like the reference engine, with mapped sampling params',
    async () => {
      const { omni, recordDir, basePort } = await setup();
      const { pipeline } = await up(omni, TWO_STAGES);
      const records = await readRecords(recordDir);
      const conn = connectionOf(pipeline, 0);
      const chunks = await collect(
        conn.request({
          request_id: 'r1',
          input: 'The quick brown fox',
          params: { top_k: 5, top_p: 0.9, stop: ['never-generated'], output_kind: 'DELTA', presence_penalty: null },
        }),
      );
      // 8 tokens (stage default max_tokens), one chunk each, then the final.
      expect(chunks).toHaveLength(9);
      expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      expect(chunks.map((c) => c.done)).toEqual([false, false, false, false, false, false, false, false, true]);
      expect(chunks.every((c) => c.request_id === 'r1')).toBe(true);
      const tokens = chunks
        .slice(0, -1)
        .map((c) => c.data as { kind: string; index: number; token_id: number; text: string });
      tokens.forEach((t, i) => {
        expect(t.kind).toBe('token');
        expect(t.index).toBe(i);
        expect(Number.isInteger(t.token_id)).toBe(true);
        expect(t.text).toMatch(/^ [a-z]+$/);
      });
      const final = chunks.at(-1)!.data as { kind: string; text: string; token_ids: number[]; finish_reason: string };
      expect(final).toEqual({
        kind: 'final',
        text: tokens.map((t) => t.text).join(''),
        token_ids: tokens.map((t) => t.token_id),
        finish_reason: 'length',
        // vLLM's usage-only event (stream_options.include_usage), as the server reports it.
        usage: { prompt_tokens: expect.any(Number) as number, completion_tokens: tokens.length },
      });
      // Same keys as the reference worker's chunks.
      expect(Object.keys(tokens[0]!).sort()).toEqual(['index', 'kind', 'text', 'token_id']);
      expect(Object.keys(final).sort()).toEqual(['finish_reason', 'kind', 'text', 'token_ids', 'usage']);

      // What vllm received: stage defaults under the request's params, engine-only fields and nulls left out.
      const events = await readEvents(recordDir, records.get(basePort)!.pid);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ event: 'request', path: '/v1/completions' });
      const body = (events[0] as { body: Record<string, unknown> }).body;
      expect(body).toEqual({
        model: MODEL,
        prompt: 'The quick brown fox',
        stream: true,
        stream_options: { include_usage: true },
        return_token_ids: true,
        temperature: 0,
        max_tokens: 8,
        seed: 7,
        top_k: 5,
        top_p: 0.9,
        stop: ['never-generated'],
      });

      // Deterministic: the same request gives the same text; the stage-1 connection uses its served name
      // and takes stage 0's output ({text}) as its prompt.
      const again = await collect(conn.request({ request_id: 'r2', input: 'The quick brown fox', params: {} }));
      expect((again.at(-1)!.data as { text: string }).text).toBe(final.text);
      const down = await collect(
        connectionOf(pipeline, 1).request({ request_id: 'r3', input: final, params: { max_tokens: 3 } }),
      );
      expect(down).toHaveLength(4);
      const s1Events = await readEvents(recordDir, records.get(basePort + 100)!.pid);
      expect((s1Events[0] as { body: Record<string, unknown> }).body).toMatchObject({
        model: 'talker-model',
        prompt: final.text,
        max_tokens: 3,
      });

      // A stop string ends generation with finish_reason "stop"; token-id prompts pass as lists.
      const firstWord = tokens[2]!.text.trim();
      const stopped = await collect(
        conn.request({ request_id: 'r4', input: 'The quick brown fox', params: { stop: firstWord } }),
      );
      const stoppedFinal = stopped.at(-1)!.data as { text: string; finish_reason: string };
      expect(stoppedFinal.finish_reason).toBe('stop');
      expect(stoppedFinal.text.split(' ').length - 1).toBeLessThanOrEqual(2);
      const byIds = await collect(conn.request({ request_id: 'r5', input: [1, 2, 3], params: { max_tokens: 2 } }));
      expect(byIds).toHaveLength(3);
      const all = await readEvents(recordDir, records.get(basePort)!.pid);
      expect((all.at(-1) as { body: Record<string, unknown> }).body['prompt']).toEqual([1, 2, 3]);
      await pipeline.stop();
    },
    TIMEOUT,
  );

  it(
    'HTTP errors become OMNI_REQUEST_FAILED naming stage, replica, status and vLLM’s message',
    async () => {
      const { omni } = await setup();
      const { pipeline } = await up(omni, oneStage({}, 'max_model_len: 64'));
      const err = await rejection(
        collect(connectionOf(pipeline, 0).request({ request_id: 'big', input: 'hello', params: { max_tokens: 1000 } })),
      );
      expect(err.code).toBe('OMNI_REQUEST_FAILED');
      expect(err.message).toContain('stage 0 replica 0');
      expect(err.message).toContain('request big');
      expect(err.message).toContain('HTTP 400');
      expect(err.message).toContain('maximum context length is 64 tokens');
      expect(err.context).toMatchObject({ stage_id: 0, replica_id: 0, request_id: 'big', status: 400 });
      expect(err.hint).toMatch(/max_tokens/);
      // Inputs without a prompt are refused before anything is sent.
      const bad = await rejection(
        collect(connectionOf(pipeline, 0).request({ request_id: 'x', input: { tensor: 1 }, params: {} })),
      );
      expect(bad.code).toBe('OMNI_REQUEST_FAILED');
      expect(bad.message).toContain('prompt');
      await pipeline.stop();
    },
    TIMEOUT,
  );

  it(
    'aborting the signal mid-stream cancels the HTTP request (vllm sees the disconnect) and throws OMNI_CANCELLED',
    async () => {
      const { omni, recordDir } = await setup();
      const { pipeline } = await up(omni, oneStage({ FAKE_VLLM_TOKEN_DELAY_MS: 40 }));
      const pid = [...(await readRecords(recordDir)).values()][0]!.pid;
      const conn = connectionOf(pipeline, 0);
      const ctrl = new AbortController();
      const got: ReplicaOutputChunk[] = [];
      const t0 = Date.now();
      const err = await rejection(
        (async () => {
          for await (const c of conn.request(
            { request_id: 'long', input: 'go on', params: { max_tokens: 200 } },
            ctrl.signal,
          )) {
            got.push(c);
            if (got.length === 2) ctrl.abort();
          }
        })(),
      );
      expect(err.code).toBe('OMNI_CANCELLED');
      expect(err.message).toContain('long');
      expect(got).toHaveLength(2);
      expect(Date.now() - t0).toBeLessThan(2_000); // not the 8 s the full stream takes
      expect(
        await eventually(async () =>
          (await readEvents(recordDir, pid)).some((e) => e.event === 'disconnect' && e.id.endsWith('-0')),
        ),
      ).toBe(true);

      // Leaving the loop early also ends the HTTP request.
      for await (const c of conn.request({ request_id: 'brk', input: 'go on', params: { max_tokens: 200 } })) {
        expect(c.seq).toBe(0);
        break;
      }
      expect(
        await eventually(
          async () => (await readEvents(recordDir, pid)).filter((e) => e.event === 'disconnect').length === 2,
        ),
      ).toBe(true);

      // An already-aborted signal sends nothing.
      const pre = new AbortController();
      pre.abort();
      expect(
        (await rejection(collect(conn.request({ request_id: 'pre', input: 'x', params: {} }, pre.signal)))).code,
      ).toBe('OMNI_CANCELLED');
      expect((await readEvents(recordDir, pid)).filter((e) => e.event === 'request')).toHaveLength(2);
      // The replica still serves after the aborts.
      expect(await collect(conn.request({ request_id: 'after', input: 'x', params: { max_tokens: 1 } }))).toHaveLength(
        2,
      );
      await pipeline.stop();
    },
    TIMEOUT,
  );

  it(
    'a replica that dies mid-request fails the request instead of hanging',
    async () => {
      const { omni, recordDir } = await setup();
      const { pipeline } = await up(omni, oneStage({ FAKE_VLLM_TOKEN_DELAY_MS: 50 }));
      pipeline.failed.catch(() => undefined);
      const pid = [...(await readRecords(recordDir)).values()][0]!.pid;
      const conn = connectionOf(pipeline, 0);
      const err = await rejection(
        (async () => {
          let n = 0;
          for await (const _ of conn.request({ request_id: 'dying', input: 'x', params: { max_tokens: 100 } })) {
            if (++n === 1) process.kill(pid, 'SIGKILL');
          }
        })(),
      );
      expect(['OMNI_REQUEST_FAILED', 'OMNI_WORKER_EXITED']).toContain(err.code);
      expect(err.message).toContain('stage 0 replica 0');
      expect(err.message).toContain('dying');
      await pipeline.stop();
    },
    TIMEOUT,
  );
});

describe('engine vllm: attach', () => {
  it(
    'waits for a slow `vllm serve` to load before the replica is ready',
    async () => {
      const { omni } = await setup();
      const t0 = Date.now();
      const { pipeline } = await up(omni, oneStage({ FAKE_VLLM_STARTUP_MS: 800 }));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(800);
      expect(connectionOf(pipeline, 0).info['models']).toEqual([MODEL]);
      await pipeline.stop();
    },
    TIMEOUT,
  );

  it(
    'a `vllm serve` that exits while loading fails the bring-up with OMNI_WORKER_EXITED (phase ready, exit code, last lines)',
    async () => {
      const { omni, recordDir } = await setup();
      const t0 = Date.now();
      const err = await rejection(up(omni, oneStage({ FAKE_VLLM_STARTUP_MS: 200, FAKE_VLLM_EXIT_CODE: 3 })));
      expect(err.code).toBe('OMNI_WORKER_EXITED');
      expect(err.message).toContain('stage 0 replica 0');
      expect(err.message).toContain('exit code 3');
      expect(err.context).toMatchObject({ stage_id: 0, replica_id: 0, phase: 'ready', exit_code: 3 });
      expect(err.context.last_lines?.join('\n')).toContain('engine core initialization failed');
      // The plugin's attach noticed the exit (not a generic timeout), and says what it was waiting for.
      expect(err.message).toContain('/v1/models');
      expect(err.context).toMatchObject({ plugin: LLM_PLUGIN_NAME, hook: 'attach' });
      expect(Date.now() - t0).toBeLessThan(10_000); // failed fast, not at the stage deadline
      const pids = [...(await readRecords(recordDir)).values()].map((r) => r.pid);
      expect(pids).toHaveLength(1);
      expect(await eventually(() => pids.every((p) => !alive(p)))).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'a failing replica of stage 1 takes the bring-up down and stops stage 0’s healthy replica',
    async () => {
      const { omni, recordDir } = await setup();
      const text = `stage_args:
  - stage_id: 0
    engine: vllm
    runtime: { devices: "0" }
  - stage_id: 1
    engine: vllm
    engine_input_source: [0]
    runtime: { devices: "1", env: { FAKE_VLLM_STARTUP_MS: 300, FAKE_VLLM_EXIT_CODE: 7 } }
`;
      const err = await rejection(up(omni, text));
      expect(err.code).toBe('OMNI_WORKER_EXITED');
      expect(err.context).toMatchObject({ stage_id: 1, replica_id: 0, phase: 'ready', exit_code: 7 });
      const pids = [...(await readRecords(recordDir)).values()].map((r) => r.pid);
      expect(pids).toHaveLength(2);
      expect(await eventually(() => pids.every((p) => !alive(p)))).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'a `vllm serve` that never answers hits stage_init_timeout as OMNI_ATTACH_TIMEOUT (phase ready) and is stopped',
    async () => {
      const { omni, recordDir } = await setup();
      const t0 = Date.now();
      const err = await rejection(up(omni, oneStage({ FAKE_VLLM_STARTUP_MS: 60_000 }), {}, { stageInitTimeoutS: 1 }));
      expect(err.code).toBe('OMNI_ATTACH_TIMEOUT');
      expect(err.context).toMatchObject({ stage_id: 0, replica_id: 0, phase: 'ready' });
      expect(err.message).toContain('/v1/models');
      expect(Date.now() - t0).toBeLessThan(8_000);
      const pids = [...(await readRecords(recordDir)).values()].map((r) => r.pid);
      expect(await eventually(() => pids.every((p) => !alive(p)))).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'cancelling the bring-up while vllm loads stops it with OMNI_CANCELLED',
    async () => {
      const { omni, recordDir } = await setup();
      const ctrl = new AbortController();
      setTimeout(() => ctrl.abort(), 500);
      const err = await rejection(up(omni, oneStage({ FAKE_VLLM_STARTUP_MS: 60_000 }), {}, { signal: ctrl.signal }));
      expect(err.code).toBe('OMNI_CANCELLED');
      const pids = [...(await readRecords(recordDir)).values()].map((r) => r.pid);
      expect(await eventually(() => pids.every((p) => !alive(p)))).toBe(true);
    },
    TIMEOUT,
  );

  it("leaves replicas of other engines to core (the engine attach is the vllm engine's alone, and passes on a control worker)", async () => {
    const omni = new Omnistage({ plugins: [llmPlugin()] });
    expect(omni.definitions.engine('llm', 'reference')?.attach).toBeUndefined();
    const replica = { stage_type: 'llm', engine: 'vllm', worker: { attach: 'control' } };
    const runtime = { replica, signal: new AbortController().signal, deadline: Date.now() + 1000 };
    const attach = omni.definitions.engine('llm', 'vllm')?.attach;
    expect(attach).toBeTypeOf('function');
    expect(await attach!({} as unknown as ReplicaProcessHandle, runtime as unknown as ReplicaRuntime)).toBeUndefined();
  });
});
