import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { listRunPayloads, payloadPath, writePayload } from '../../src/connectors/shm-store.js';
import { Omnistage } from '../../src/omnistage.js';
import { bringUp } from '../../src/pipeline/bring-up.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import { newRunId } from '../../src/orchestrate/run-id.js';
import type { RunningPipeline } from '../../src/orchestrate/running-pipeline.js';
import type { OmnistagePlugin } from '../../src/plugin.js';
import { requireBuilt, waitFor } from '../runtime/helpers.js';
import { payloadFixturePlugin, watchPayloadFiles } from './payload-fixture.js';
import { createRouter } from '../../src/orchestrate/router.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const payloadPlugin: OmnistagePlugin = payloadFixturePlugin();

const open: { pipeline?: RunningPipeline; lockDir: string }[] = [];

async function up(stageOverrides?: string): Promise<RunningPipeline> {
  const lockDir = await mkdtemp(join(tmpdir(), 'omni-payload-test-'));
  const entry: { pipeline?: RunningPipeline; lockDir: string } = { lockDir };
  open.push(entry);
  const omni = new Omnistage({ plugins: [payloadPlugin], lockDir });
  const config = await loadPipelineConfig(join(FIXTURES, 'payload-pipeline.yaml'), {
    platform: 'cpu',
    ...(stageOverrides ? { stageOverrides } : {}),
  });
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

beforeAll(() =>
  requireBuilt('worker/index.ts', 'worker/connection.ts', 'connectors/shm-store.ts', 'connectors/payload-ref.ts'),
);
afterEach(async () => {
  for (const e of open.splice(0)) {
    await e.pipeline?.stop('test done');
    await rm(e.lockDir, { recursive: true, force: true });
  }
});

describe('payloads through a running pipeline (fixture engine)', () => {
  it('sends a large payload through a /dev/shm file that exists only in flight, a small one inline', async () => {
    const pipeline = await up();
    const { result, seen } = await watchPayloadFiles(pipeline, () =>
      createRouter(pipeline).complete({ size: 200_000, seed: 5 }),
    );
    expect(result).toHaveLength(1);
    expect(result[0]!.data).toMatchObject({ size: 200_000, via: 'shm', key: expect.stringMatching(/^s0r0_/) });
    const key = (result[0]!.data as { key: string }).key;
    expect([...seen]).toEqual([key]); // the file existed while the consumer held it...
    expect(await waitFor(() => listRunPayloads(pipeline.runId, pipeline.payloads.dir).length === 0, 2_000)).toBe(true); // ...and went with its ack

    const small = await watchPayloadFiles(pipeline, () => createRouter(pipeline).complete({ size: 1024, seed: 5 }));
    expect(small.result[0]!.data).toMatchObject({ size: 1024, via: 'inline' });
    expect(small.seen.size).toBe(0);

    const stray = writePayload(pipeline.runId, 'stray', Buffer.from('never announced'), pipeline.payloads.dir);
    await pipeline.stop('test');
    expect(existsSync(stray)).toBe(false); // the teardown sweep
    expect(listRunPayloads(pipeline.runId, pipeline.payloads.dir)).toEqual([]);
  });

  it('leaves no payload file behind when the consumer dies before acknowledging', async () => {
    const pipeline = await up('{"1": {"exit_on_read": true}}');
    const { seen } = await watchPayloadFiles(pipeline, async () => {
      await expect(createRouter(pipeline).complete({ size: 100_000, seed: 1 })).rejects.toThrow();
    });
    expect(seen.size).toBe(1);
    await pipeline.stop('test');
    expect(listRunPayloads(pipeline.runId, pipeline.payloads.dir)).toEqual([]);
  });

  it('releases an unacknowledged payload when its request ends', async () => {
    const pipeline = await up('{"1": {"no_ack": true, "hold_ms": 0}}');
    const out = await createRouter(pipeline).complete({ size: 100_000, seed: 2 });
    expect(out[0]!.data).toMatchObject({ via: 'shm' });
    const key = (out[0]!.data as { key: string }).key;
    expect(await waitFor(() => !existsSync(payloadPath(pipeline.runId, key, pipeline.payloads.dir)), 2_000)).toBe(true);
  });
});
