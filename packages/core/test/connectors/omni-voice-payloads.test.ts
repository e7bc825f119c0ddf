/**
 * examples/omni-voice (thinker latent → talker ×2 latent → code2wav) on the real reference engines
 * with the real KV plugin (both loaded from their builds, so core does not depend on them). The
 * thinker's hidden size is raised so its latent (16 × 1536 float32 = 96 KiB) exceeds the auto
 * SharedMemoryConnector's 64 KiB threshold; the talker's (24 × 64 float32 = 6 KiB) stays under it.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import type { PayloadRef } from '../../src/connectors/payload-ref.js';
import { listRunPayloads } from '../../src/connectors/shm-store.js';
import type { ReplicaOutputChunk } from '../../src/hooks/replica-handles.js';
import { Omnistage } from '../../src/omnistage.js';
import { bringUp } from '../../src/pipeline/bring-up.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import { newRunId } from '../../src/orchestrate/run-id.js';
import type { RunningPipeline, StartedReplica } from '../../src/orchestrate/running-pipeline.js';
import type { OmnistagePlugin } from '../../src/plugin.js';
import { requireBuilt, waitFor } from '../runtime/helpers.js';
import { watchPayloadFiles } from './payload-fixture.js';
import { createRouter } from '../../src/orchestrate/router.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const PIPELINE = join(ROOT, 'examples/omni-voice/pipeline.yaml');
const LLM_DIST = join(ROOT, 'packages/plugin-llm/dist/index.js');
const KV_DIST = join(ROOT, 'packages/plugin-kv-connector/dist/index.js');
const OVERRIDES = JSON.stringify({ '0': { hidden_size: 1536 }, '1': { token_delay_ms: 25 } });
const THINKER_LATENT_BYTES = 16 * 1536 * 4;

async function plugins(): Promise<OmnistagePlugin[]> {
  for (const p of [LLM_DIST, KV_DIST]) {
    if (!existsSync(p)) throw new Error(`${p} is missing: run \`npx turbo run build\` at the repository root first`);
  }
  const llm = (await import(pathToFileURL(LLM_DIST).href)) as { llmPlugin: () => OmnistagePlugin };
  const kv = (await import(pathToFileURL(KV_DIST).href)) as { kvConnectorPlugin: () => OmnistagePlugin };
  return [llm.llmPlugin(), kv.kvConnectorPlugin()];
}

/** Every chunk each stage's replicas sent, as the router received it (before any resolution for the user). */
type Taps = Map<number, ReplicaOutputChunk[]> & { senders: Set<StartedReplica> };

function tapOutputs(pipeline: RunningPipeline): Taps {
  const taps = Object.assign(new Map<number, ReplicaOutputChunk[]>(), { senders: new Set<StartedReplica>() });
  for (const r of pipeline.replicas) {
    const conn = r.connection!;
    const stageId = r.plan.stage_id;
    r.connection = {
      info: conn.info,
      shutdown: () => conn.shutdown(),
      close: () => conn.close(),
      async *request(req, signal) {
        for await (const chunk of conn.request(req, signal)) {
          const list = taps.get(stageId) ?? [];
          list.push(chunk);
          taps.set(stageId, list);
          taps.senders.add(r);
          yield chunk;
        }
      },
    };
  }
  return taps;
}

const open: { pipeline?: RunningPipeline; lockDir: string }[] = [];

async function upOmniVoice(): Promise<RunningPipeline> {
  const lockDir = await mkdtemp(join(tmpdir(), 'omni-voice-payload-test-'));
  const entry: { pipeline?: RunningPipeline; lockDir: string } = { lockDir };
  open.push(entry);
  const omni = new Omnistage({ plugins: await plugins(), lockDir });
  const config = await loadPipelineConfig(PIPELINE, { platform: 'cpu', stageOverrides: OVERRIDES });
  const runId = newRunId();
  const plan = await planPipeline(omni, config, {
    platform: 'cpu',
    purpose: 'launch',
    runId,
    env: { PATH: process.env.PATH },
  });
  entry.pipeline = await bringUp(omni, plan, { stopGraceMs: 2000 });
  return entry.pipeline;
}

const finalOf = (taps: Taps, stageId: number): Record<string, unknown>[] =>
  (taps.get(stageId) ?? []).filter((c) => c.done).map((c) => c.data as Record<string, unknown>);

beforeAll(() =>
  requireBuilt(
    'worker/index.ts',
    'worker/connection.ts',
    'connectors/shm-store.ts',
    'connectors/payload-ref.ts',
    'connectors/connector-config.ts',
  ),
);
afterEach(async () => {
  for (const e of open.splice(0)) {
    await e.pipeline?.stop('test done');
    await rm(e.lockDir, { recursive: true, force: true });
  }
});

describe('omni-voice payloads', () => {
  it('gives every stage its connector in the engine args its worker receives', async () => {
    const omni = new Omnistage({ plugins: await plugins() });
    const config = await loadPipelineConfig(PIPELINE, { platform: 'cpu' });
    const plan = await planPipeline(omni, config, { platform: 'cpu' });
    const cfg = (stage: number): unknown =>
      (plan.stages[stage]!.replicas[0]!.engine_args['omni_kv_config'] as Record<string, unknown>)['connector_config'];
    expect(cfg(0)).toEqual({ type: 'SharedMemoryConnector', shm_threshold_bytes: 65536, role: 'sender' });
    expect(cfg(1)).toEqual({ type: 'SharedMemoryConnector', shm_threshold_bytes: 65536, role: 'sender' });
    expect(cfg(2)).toEqual({ type: 'SharedMemoryConnector', shm_threshold_bytes: 65536, role: 'receiver' });
    for (const r of plan.stages[1]!.replicas)
      expect(r.engine_args['omni_kv_config']).toMatchObject({ connector_config: { type: 'SharedMemoryConnector' } });
  });

  it('moves the thinker latent through /dev/shm files that live only in flight; the talker latent goes inline', async () => {
    const pipeline = await upOmniVoice();
    const taps = tapOutputs(pipeline);
    const prompts = ['a short voice request', 'another one, in parallel'];
    const router = createRouter(pipeline);
    const { result, seen } = await watchPayloadFiles(pipeline, () =>
      Promise.all(prompts.map((p) => router.complete(p))),
    );

    // Between stages: the thinker's latent was an shm reference (only the key crossed the socket)...
    const thinker = finalOf(taps, 0);
    expect(thinker).toHaveLength(2);
    const shmKeys = thinker.map((d) => {
      const t = d['tensor'] as PayloadRef;
      expect(t).toMatchObject({
        $payload: 1,
        via: 'shm',
        size: THINKER_LATENT_BYTES,
        dtype: 'float32',
        shape: [16, 1536],
      });
      expect(t.data_base64).toBeUndefined();
      return t.key;
    });
    // ...the talker's, under the threshold, went inline.
    const talker = finalOf(taps, 1);
    expect(talker).toHaveLength(2);
    for (const d of talker)
      expect(d['tensor']).toMatchObject({
        $payload: 1,
        via: 'inline',
        size: 24 * 64 * 4,
        data_base64: expect.any(String),
      });

    // The files existed while the talker generated (it acknowledges after use)...
    expect([...seen].sort()).toEqual([...shmKeys].sort());
    // ...and are gone now that every consumer acknowledged.
    expect(await waitFor(() => listRunPayloads(pipeline.runId, pipeline.payloads.dir).length === 0, 2_000)).toBe(true);

    // The user's copy of the thinker's final output has the bytes inline; code2wav's audio is there.
    for (const outs of result) {
      const t0 = outs.find((o) => o.stage_id === 0)!.data as { tensor: PayloadRef; text: string };
      expect(t0.tensor).toMatchObject({ via: 'inline', size: THINKER_LATENT_BYTES });
      expect(Buffer.from(t0.tensor.data_base64!, 'base64').byteLength).toBe(THINKER_LATENT_BYTES);
      const audio = outs.find((o) => o.stage_id === 2)!.data as { kind: string; data_base64: string };
      expect(audio.kind).toBe('audio');
      expect(Buffer.from(audio.data_base64, 'base64').subarray(0, 4).toString()).toBe('RIFF');
    }

    await pipeline.stop('test');
    expect(listRunPayloads(pipeline.runId, pipeline.payloads.dir)).toEqual([]);
  });

  it('keeps the file for the retry when a talker replica is killed mid-request, and leaves none after stop', async () => {
    const pipeline = await upOmniVoice();
    const taps = tapOutputs(pipeline);
    const done = createRouter(pipeline).complete('kill the talker while it speaks');
    // The talker streams tokens only after reading the latent (which it acknowledges after use).
    expect(await waitFor(() => (taps.get(1) ?? []).length >= 2, 10_000)).toBe(true);
    const busy = [...taps.senders].find((r) => r.plan.stage_id === 1)!;
    expect(listRunPayloads(pipeline.runId, pipeline.payloads.dir)).toHaveLength(1);
    process.kill(busy.process.pid, 'SIGKILL');
    const outs = await done; // retried once on the other talker replica, which reads the same file
    expect(outs.some((o) => o.stage_id === 2)).toBe(true);
    const talkers = new Set([...taps.senders].filter((r) => r.plan.stage_id === 1));
    expect(talkers.size).toBe(2);
    expect(await waitFor(() => listRunPayloads(pipeline.runId, pipeline.payloads.dir).length === 0, 2_000)).toBe(true);
    await pipeline.stop('test');
    expect(listRunPayloads(pipeline.runId, pipeline.payloads.dir)).toEqual([]);
  });
});
