/**
 * vLLM prefill → decode over NixlConnector, as vLLM's disaggregated-serving proxy defines it, run on
 * examples/vllm-disaggregated/pipeline.yaml against four stand-in `vllm serve` processes
 * (fixtures/fake-vllm.mjs). Under `--kv-transfer-config` naming NixlConnector the stand-in refuses
 * any request without valid `kv_transfer_params` and records every request it received, so these
 * tests prove what omnistage sent and that it never sent a decode request without them.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Omnistage, bringUp, createRouter, inlinePayloadRef, loadPipelineConfig, planPipeline } from '@omnistage/core';
import type { InitPlan, RunningPipeline } from '@omnistage/core';
import { llmPlugin } from '@omnistage/plugin-llm';
import { afterEach, describe, expect, it } from 'vitest';
import { kvConnectorPlugin } from '../src/kv-plugin.js';
// The llm plugin's stand-in `vllm serve` and its record readers (a test fixture of that package).
import {
  FAKE_VLLM,
  freeBasePort,
  killLeftovers,
  readEvents,
  readRecords,
  rejection,
  removeDir,
  tempDir,
  type FakeVllmEvent,
  type FakeVllmRecord,
} from '../../plugin-llm/test/vllm-fixture.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/vllm-disaggregated/pipeline.yaml', import.meta.url));
/** vLLM's disaggregated-serving proxy protocol: what a prefill request carries. */
const PREFILL_KV_TRANSFER_PARAMS = {
  do_remote_decode: true,
  do_remote_prefill: false,
  remote_engine_id: null,
  remote_block_ids: null,
  remote_host: null,
  remote_port: null,
};
const TIMEOUT = 60_000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Up {
  plan: InitPlan;
  pipeline: RunningPipeline;
  recordDir: string;
  basePort: number;
}

/** The example's text, with `env` added to stage 0's runtime (a knob of the stand-in). */
async function exampleText(prefillEnv: Record<string, string> = {}): Promise<string> {
  const text = await readFile(EXAMPLE, 'utf8');
  if (Object.keys(prefillEnv).length === 0) return text;
  const out = text.replace(
    'runtime: { devices: "0,1", num_replicas: 2 }',
    `runtime: { devices: "0,1", num_replicas: 2, env: ${JSON.stringify(prefillEnv)} }`,
  );
  expect(out).not.toBe(text);
  return out;
}

async function plan(
  text: string,
  purpose: 'plan' | 'launch',
  basePort = 18100,
): Promise<{ omni: Omnistage; plan: InitPlan; lockDir: string }> {
  const lockDir = await tempDir('vllm-pd-locks-');
  cleanups.push(() => removeDir(lockDir));
  const omni = new Omnistage({
    plugins: [llmPlugin({ vllmCommand: FAKE_VLLM, vllmBasePort: basePort }), kvConnectorPlugin()],
    lockDir,
  });
  const config = await loadPipelineConfig({ text, path: EXAMPLE });
  const runId = `pd-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  return { omni, lockDir, plan: await planPipeline(omni, config, { platform: 'cpu', purpose, runId }) };
}

async function up(prefillEnv: Record<string, string> = {}): Promise<Up> {
  const recordDir = await tempDir('vllm-pd-rec-');
  const basePort = await freeBasePort([0, 1, 100, 101]);
  const previous = process.env['FAKE_VLLM_RECORD_DIR'];
  process.env['FAKE_VLLM_RECORD_DIR'] = recordDir;
  cleanups.push(async () => {
    if (previous === undefined) delete process.env['FAKE_VLLM_RECORD_DIR'];
    else process.env['FAKE_VLLM_RECORD_DIR'] = previous;
    killLeftovers(
      [...(await readRecords(recordDir).catch(() => new Map<number, FakeVllmRecord>())).values()].map((r) => r.pid),
    );
    await removeDir(recordDir);
  });
  const planned = await plan(await exampleText(prefillEnv), 'launch', basePort);
  const pipeline = await bringUp(planned.omni, planned.plan, { stopGraceMs: 2_000 });
  cleanups.push(() => pipeline.stop('test cleanup'));
  return { plan: planned.plan, pipeline, recordDir, basePort };
}

/** Every request each stand-in recorded, by port. */
async function requestsByPort(u: Up): Promise<Map<number, { record: FakeVllmRecord; events: FakeVllmEvent[] }>> {
  const out = new Map<number, { record: FakeVllmRecord; events: FakeVllmEvent[] }>();
  for (const [port, record] of await readRecords(u.recordDir))
    out.set(port, { record, events: await readEvents(u.recordDir, record.pid) });
  return out;
}

const bodiesOf = (events: FakeVllmEvent[]): Record<string, unknown>[] =>
  events.flatMap((e) => (e.event === 'request' ? [e.body] : []));

describe('vllm-disaggregated: prefill → decode over NixlConnector', () => {
  it('the plan says the edge is driven as two-phase requests and gives the decode stage its input processor', async () => {
    const { plan: p } = await plan(await exampleText(), 'plan');
    expect(p.transfers).toHaveLength(1);
    const t = p.transfers[0]!;
    expect(t).toMatchObject({ from: 0, to: 1, connector: 'NixlConnector', carried_by: 'engine' });
    expect(t.flow).toMatch(/prefill/);
    expect(t.flow).toMatch(/max_tokens 1/);
    expect(t.flow).toMatch(/kv_transfer_params/);
    expect(p.stages[1]!.input_processor).toBeTypeOf('function');
    expect(p.stages[0]!.input_processor ?? null).toBeNull();
    expect(p.warnings.map((w) => w.code)).not.toContain('OMNI_WARN_KV_FLOW_NOT_DRIVEN');
  });

  it('warns that a P2pNcclConnector edge between vllm stages is not driven (and plans no flow)', async () => {
    const text = (await exampleText()).replace(
      'name: NixlConnector, extra: { backends: [UCX] }',
      'name: P2pNcclConnector',
    );
    const { plan: p } = await plan(text, 'plan');
    expect(p.transfers[0]!.flow).toBeUndefined();
    const w = p.warnings.filter((d) => d.code === 'OMNI_WARN_KV_FLOW_NOT_DRIVEN');
    expect(w).toHaveLength(1);
    expect(w[0]!.message).toMatch(/P2pNcclConnector/);
    expect(w[0]).toMatchObject({ file: EXAMPLE, line: 14 });
  });

  it(
    'sends each request as a prefill (max_tokens 1, no stream, kv_transfer_params) then the original request with what prefill returned; each pool balanced on its own',
    async () => {
      const u = await up();
      const prompts = ['one two three', 'four five', 'six seven eight nine', 'ten'];
      // As `omnistage serve` sends them: the request's params go to the first stage only; the
      // decode request still carries them, being the original request.
      const params = { 0: { max_tokens: 6, temperature: 0 } };
      const router = createRouter(u.pipeline);
      const outputs = await Promise.all(
        prompts.map((prompt, i) => router.complete(prompt, { requestId: `r${i}`, params })),
      );
      const byPort = await requestsByPort(u);
      const prefillPorts = [u.basePort, u.basePort + 1];
      const decodePorts = [u.basePort + 100, u.basePort + 101];
      const prefill = prefillPorts.flatMap((port) =>
        bodiesOf(byPort.get(port)!.events).map((body) => ({ port, body })),
      );
      const decode = decodePorts.flatMap((port) => bodiesOf(byPort.get(port)!.events).map((body) => ({ port, body })));
      // Round-robin per pool: two requests on each replica of each stage.
      for (const port of [...prefillPorts, ...decodePorts])
        expect(bodiesOf(byPort.get(port)!.events), `port ${port}`).toHaveLength(2);
      // No stand-in refused anything.
      for (const { events } of byPort.values()) expect(events.filter((e) => e.event === 'refused')).toEqual([]);

      for (const [i, prompt] of prompts.entries()) {
        const p = prefill.find((x) => x.body['prompt'] === prompt)!;
        expect(p, `prefill of ${prompt}`).toBeDefined();
        expect(p.body).toMatchObject({ prompt, max_tokens: 1, stream: false, temperature: 0 });
        expect(p.body['kv_transfer_params']).toEqual(PREFILL_KV_TRANSFER_PARAMS);
        const d = decode.find((x) => x.body['prompt'] === prompt)!;
        expect(d, `decode of ${prompt}`).toBeDefined();
        // The decode request is the original one (streamed, the user's max_tokens) plus the prefill's answer.
        expect(d.body).toMatchObject({ prompt, stream: true, max_tokens: 6, temperature: 0 });
        const prefiller = byPort.get(p.port)!.record;
        expect(d.body['kv_transfer_params']).toMatchObject({
          do_remote_prefill: true,
          do_remote_decode: false,
          remote_engine_id: `fake-nixl-${prefiller.pid}`,
          remote_host: '127.0.0.1',
          remote_port: Number(prefiller.env['VLLM_NIXL_SIDE_CHANNEL_PORT']),
        });
        // The user receives the decode output: one final, from stage 1, six tokens.
        const finals = outputs[i]!;
        expect(finals).toHaveLength(1);
        expect(finals[0]!.stage_id).toBe(1);
        expect(decodePorts).toContain(u.basePort + 100 + finals[0]!.replica_id);
        expect((finals[0]!.data as { text: string }).text.trim().split(' ')).toHaveLength(6);
      }
      // Omnistage never sent a decode replica a request without kv_transfer_params.
      for (const { body } of decode)
        expect(body['kv_transfer_params'], JSON.stringify(body)).toMatchObject({ do_remote_prefill: true });
    },
    TIMEOUT,
  );

  it(
    'sends chat messages with an image to /v1/chat/completions on both sides',
    async () => {
      const u = await up();
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
      const input = {
        prompt: 'user: what is <image>',
        messages: [{ role: 'user', content: 'what is <image>' }],
        multi_modal_data: { image: [inlinePayloadRef(png, { mime: 'image/png' })] },
      };
      const finals = await createRouter(u.pipeline).complete(input, { params: { 1: { max_tokens: 3 } } });
      expect((finals[0]!.data as { text: string }).text.trim().split(' ')).toHaveLength(3);
      const all = [...(await requestsByPort(u)).values()].flatMap(({ events }) =>
        events.filter((e) => e.event === 'request'),
      );
      expect(all.map((e) => e.event === 'request' && e.path)).toEqual(['/v1/chat/completions', '/v1/chat/completions']);
      const expected = [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'what is ' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } },
          ],
        },
      ];
      for (const e of all) if (e.event === 'request') expect(e.body['messages']).toEqual(expected);
      const kinds = all.map((e) =>
        e.event === 'request' ? Object.keys(e.body['kv_transfer_params'] as object).length : 0,
      );
      expect(kinds).toEqual(expect.arrayContaining([6, 7]));
    },
    TIMEOUT,
  );

  it(
    'the decode stand-in refuses a request without kv_transfer_params, and the decode connection never sends one',
    async () => {
      const u = await up();
      const decodePort = u.basePort + 100;
      const res = await fetch(`http://127.0.0.1:${decodePort}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'Qwen/Qwen2.5-0.5B-Instruct', prompt: 'hi', max_tokens: 2 }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/kv_transfer_params/);

      const decode = u.pipeline.replicas.find((r) => r.plan.stage_id === 1 && r.plan.replica_id === 0)!;
      const before = bodiesOf((await requestsByPort(u)).get(decodePort)!.events).length;
      const err = await rejection(
        (async () => {
          for await (const _ of decode.connection!.request({ request_id: 'plain', input: 'hi', params: {} })) void _;
        })(),
      );
      expect(err.code).toBe('OMNI_KV_TRANSFER_MISSING');
      expect(err.message).toMatch(/stage 1 replica 0/);
      expect(bodiesOf((await requestsByPort(u)).get(decodePort)!.events)).toHaveLength(before);
    },
    TIMEOUT,
  );

  it(
    'a prefill answer without kv_transfer_params fails the request naming the replica; nothing is sent to decode',
    async () => {
      const u = await up({ FAKE_VLLM_OMIT_KV_TRANSFER_PARAMS: '1' });
      const err = await rejection(createRouter(u.pipeline).complete('hello there', { requestId: 'no-kv' }));
      expect(err.code).toBe('OMNI_KV_TRANSFER_MISSING');
      expect(err.message).toMatch(/stage 0 replica [01] \(pid \d+\)/);
      expect(err.message).toMatch(/without kv_transfer_params/);
      expect(err.hint).toMatch(/kv-transfer-config/);
      const byPort = await requestsByPort(u);
      expect(bodiesOf(byPort.get(u.basePort + 100)!.events)).toEqual([]);
      expect(bodiesOf(byPort.get(u.basePort + 101)!.events)).toEqual([]);
      expect(
        bodiesOf(byPort.get(u.basePort)!.events).length + bodiesOf(byPort.get(u.basePort + 1)!.events).length,
      ).toBe(1);
    },
    TIMEOUT,
  );
});
