/**
 * The shared-memory pool under load, on real replicas: 1,000 payloads of mixed sizes through a
 * 3-stage pipeline (producer → relay → consumer, fixtures/pool-pipeline.yaml) arrive intact while
 * segments are reused, the pool never outgrows its configuration, the events account for every
 * payload, and nothing is left in the payload directory after the run — nor after the orchestrator
 * is SIGKILLed with payloads in flight and the next run starts.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { PAYLOAD_DIR_ENV } from '../../src/connectors/shm-store.js';
import type { OmniEvent } from '../../src/events/types.js';
import { Omnistage } from '../../src/omnistage.js';
import { bringUp } from '../../src/pipeline/bring-up.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import { newRunId } from '../../src/orchestrate/run-id.js';
import type { RunningPipeline } from '../../src/orchestrate/running-pipeline.js';
import { isAlive, requireBuilt, trackPid, waitFor } from '../runtime/helpers.js';
import { addonMissing, needsAddon } from './addon.js';
import { checksum, pattern, payloadFixturePlugin, watchWhile } from './payload-fixture.js';
import { createRouter } from '../../src/orchestrate/router.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const PIPELINE = join(FIXTURES, 'pool-pipeline.yaml');
const POOL_BYTES = 8 * 1024 * 1024; // as configured in pool-pipeline.yaml, per sending replica
/** Inline, small, segment-sized, larger than a segment (512 KiB): a file of its own. */
const SIZES = [100, 5_000, 70_000, 200_000, 700_000];

let base: string;
const savedEnv = process.env[PAYLOAD_DIR_ENV];
const open: { pipeline?: RunningPipeline; lockDir: string }[] = [];
beforeAll(() =>
  requireBuilt(
    'worker/index.ts',
    'worker/payloads.ts',
    'connectors/shm-pool.ts',
    'connectors/shm-store.ts',
    'index.ts',
  ),
);
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'omni-pool-shm-'));
  process.env[PAYLOAD_DIR_ENV] = base; // orchestrator and replicas (they inherit it) use it
});
afterEach(async () => {
  for (const e of open.splice(0)) {
    await e.pipeline?.stop('test done');
    await rm(e.lockDir, { recursive: true, force: true });
  }
  if (savedEnv === undefined) delete process.env[PAYLOAD_DIR_ENV];
  else process.env[PAYLOAD_DIR_ENV] = savedEnv;
  await rm(base, { recursive: true, force: true });
});

async function up(events: OmniEvent[] = []): Promise<RunningPipeline> {
  const lockDir = await mkdtemp(join(tmpdir(), 'omni-pool-locks-'));
  const entry: { pipeline?: RunningPipeline; lockDir: string } = { lockDir };
  open.push(entry);
  const omni = new Omnistage({ plugins: [payloadFixturePlugin()], lockDir });
  omni.events.onAny((e) => events.push(e));
  const config = await loadPipelineConfig(PIPELINE, { platform: 'cpu' });
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

/** Bytes of each sending replica's segments now, by the replica's tag (`omnistage-<run>=<tag>_<n>`). */
function poolBytesByReplica(dir: string): string[] {
  const bytes = new Map<string, number>();
  for (const name of readdirSync(dir)) {
    const m = /=([0-9a-f]+)_[0-9a-z]+$/.exec(name);
    if (m === null) continue;
    try {
      bytes.set(m[1]!, (bytes.get(m[1]!) ?? 0) + statSync(join(dir, name)).size);
    } catch {
      // swept meanwhile
    }
  }
  return [...bytes].map(([tag, n]) => `${tag}:${n}`);
}

describe('the shared-memory pool through a 3-stage pipeline', { timeout: 240_000 }, () => {
  it.skipIf(addonMissing !== undefined)(
    needsAddon('carries 1,000 mixed payloads intact, reuses segments within pool_bytes, and leaves nothing behind'),
    async () => {
      const events: OmniEvent[] = [];
      const pipeline = await up(events);
      const dir = pipeline.payloads.dir;
      const requests = Array.from({ length: 1000 }, (_, i) => ({ size: SIZES[i % SIZES.length]!, seed: i }));
      const { result: outputs, seen } = await watchWhile(
        () => poolBytesByReplica(dir),
        async () => {
          const out: Record<string, unknown>[] = [];
          const router = createRouter(pipeline);
          for (let i = 0; i < requests.length; i += 20) {
            const batch = await Promise.all(requests.slice(i, i + 20).map((r) => router.complete(r)));
            out.push(...batch.map((b) => b[b.length - 1]!.data as Record<string, unknown>));
          }
          return out;
        },
      );
      // Every payload arrived as its producer wrote it, though segments were rewritten all along.
      expect(outputs.map((o) => [o['size'], o['sum']])).toEqual(
        requests.map((r) => [r.size, checksum(pattern(r.size, r.seed))]),
      );
      const pooled = outputs.filter((o) => o['pooled'] === true).length;
      expect(pooled).toBeGreaterThan(200); // most 5 KB to 200 KB ones went through segments (the rest: pool full)...
      const segments = new Set(readdirSync(dir).filter((n) => n.includes('=')));
      expect(segments.size).toBeGreaterThan(0);
      expect(segments.size).toBeLessThan(pooled / 2); // ...fewer segments than payloads: reused
      // Bounded: no replica's segments ever added up to more than pool_bytes.
      const sizes = [...seen].map((s) => Number(s.split(':')[1]));
      expect(Math.max(...sizes)).toBeLessThanOrEqual(POOL_BYTES);
      // The events tell each stored payload's story: stored once, freed once, acknowledged.
      const stored = events.filter((e) => e.type === 'payload:stored');
      const freed = events.filter((e) => e.type === 'payload:freed');
      expect(stored).toHaveLength(2 * requests.filter((r) => r.size > 1024).length);
      expect(
        await waitFor(() => events.filter((e) => e.type === 'payload:freed').length === stored.length, 10_000),
      ).toBe(true);
      expect(new Set(freed.map((e) => (e as { reason: string }).reason))).toEqual(new Set(['acknowledged']));
      await pipeline.stop('test');
      expect(readdirSync(base)).toEqual([]);
    },
  );

  it('under admission, 600 concurrent requests all arrive intact (no pooled payload read as gone) with the parked payloads bounded', async () => {
    const pipeline = await up();
    // The tracker's hold book: payloads announced and not yet released (their files go right after).
    const parked = (): string[] => [String(pipeline.payloads.keys.length)];
    const router = createRouter(pipeline, { maxInflightPerReplica: 4 });
    const requests = Array.from({ length: 600 }, (_, i) => ({ size: SIZES[1 + (i % 3)]!, seed: i }));
    const { result: outputs, seen } = await watchWhile(parked, () =>
      Promise.all(requests.map((r) => router.complete(r))),
    );
    expect(
      outputs.map((o) => [
        (o[0]!.data as Record<string, unknown>)['size'],
        (o[0]!.data as Record<string, unknown>)['sum'],
      ]),
    ).toEqual(requests.map((r) => [r.size, checksum(pattern(r.size, r.seed))]));
    // 3 stages × 1 replica × 4 requests in the pipeline at once, each holding at most 2 payloads.
    expect(Math.max(...[...seen].map(Number))).toBeLessThanOrEqual(24);
  });

  it('a request aborted while it waits at a full stage leaves the queue, never reaches the stage, and frees its payload', async () => {
    const events: OmniEvent[] = [];
    const pipeline = await up(events);
    const router = createRouter(pipeline, { maxInflightPerReplica: 1 });
    // A holds stage 2 (its only replica) for 2 s; B gets through stages 0 and 1 and queues there.
    const a = router.complete({ size: 5_000, seed: 1 }, { requestId: 'busy', params: { 2: { hold_ms: 2_000 } } });
    a.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    await waitFor(
      () => events.some((e) => e.type === 'request:dispatched' && e.request_id === 'busy' && e.stage_id === 2),
      20_000,
    );
    const stop = new AbortController();
    const b = router.complete({ size: 5_000, seed: 2 }, { requestId: 'queued', signal: stop.signal }).then(
      () => null,
      (e: unknown) => e,
    );
    await waitFor(
      () => events.some((e) => e.type === 'request:stage_end' && e.request_id === 'queued' && e.stage_id === 1),
      20_000,
    );
    const parked = events.flatMap((e) => (e.type === 'payload:stored' && e.request_id === 'queued' ? [e.key] : []));
    expect(parked).toHaveLength(2); // stage 0's (read by stage 1) and stage 1's, waiting for stage 2
    stop.abort(new Error('the client went away'));
    expect(String(await b)).toContain('the client went away');
    const freed = (): string[] =>
      events.flatMap((e) => (e.type === 'payload:freed' && parked.includes(e.key) ? [e.key] : []));
    expect(await waitFor(() => freed().length === 2, 10_000)).toBe(true);
    await pipeline.payloads.settled(); // the unlinks the frees started
    for (const key of parked) expect(readdirSync(pipeline.payloads.dir).some((n) => n.endsWith(`-${key}`))).toBe(false);
    expect((await a).length).toBe(1);
    expect(events.some((e) => e.type === 'request:dispatched' && e.request_id === 'queued' && e.stage_id === 2)).toBe(
      false,
    );
  });

  it('leaves nothing after a SIGKILLed orchestrator once the next run has started', async () => {
    const lockDir = await mkdtemp(join(tmpdir(), 'omni-pool-killed-'));
    open.push({ lockDir });
    const child = spawn(process.execPath, [join(FIXTURES, 'pool-orchestrator.mjs'), PIPELINE, lockDir, '40'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    trackPid(child.pid);
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('exit', (code) =>
        reject(new Error(`the orchestrator exited (${code}) before its payloads were in flight`)),
      );
    });
    const killed = JSON.parse(line) as { run_id: string; dir: string };
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    expect(isAlive(child.pid!)).toBe(false);
    // Nobody was left to clean up: the dead run's private directory holds payloads and segments.
    expect(readdirSync(base)).toEqual([killed.dir.slice(base.length + 1)]);
    expect(readdirSync(killed.dir).length).toBeGreaterThan(0);

    const next = await up(); // its bring-up reaps the dead run
    expect(readdirSync(base)).toEqual([next.payloads.dir.slice(base.length + 1)]);
    await next.stop('test');
    expect(readdirSync(base)).toEqual([]);
  });
});
