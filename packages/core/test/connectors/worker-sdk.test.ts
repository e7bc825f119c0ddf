import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SHM_CONNECTOR } from '../../src/connectors/connector-config.js';
import type { PayloadRef } from '../../src/connectors/payload-ref.js';
import { PayloadTracker, stageHolder } from '../../src/connectors/payload-tracker.js';
import { listRunPayloads, payloadPath } from '../../src/connectors/shm-store.js';
import { controlEnv, type OutputMessage, type WorkerMessage } from '../../src/control/protocol.js';
import type { ReplicaChannel } from '../../src/control/replica-channel.js';
import { ControlServer } from '../../src/control/server.js';
import { createControlToken } from '../../src/control/token.js';
import { launchProcess } from '../../src/launch/launch-process.js';
import { cleanupTempDirs, killTracked, requireBuilt, tempDir, trackPid, waitFor } from '../runtime/helpers.js';
import { addonMissing, needsAddon } from './addon.js';
import { PAYLOAD_WORKER, checksum as sum, pattern } from './payload-fixture.js';

const THRESHOLD = 1024;

const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(() =>
  requireBuilt(
    'worker/index.ts',
    'worker/connection.ts',
    'control/protocol.ts',
    'connectors/payload-ref.ts',
    'connectors/shm-store.ts',
    'connectors/connector-config.ts',
  ),
);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  killTracked();
  await cleanupTempDirs();
});

/** A control server + tracker for a fresh run, and one real payload worker attached to it. */
async function startReplica(
  opts: { dir?: string; engineArgs?: Record<string, unknown>; connector?: Record<string, unknown> } = {},
) {
  const runId = `sdk-${randomBytes(4).toString('hex')}`;
  const tracker = new PayloadTracker(runId, opts.dir === undefined ? {} : { dir: opts.dir });
  cleanups.push(() => void tracker.close());
  const server = await ControlServer.listen(join(await tempDir(), 'control.sock'), { run_id: runId });
  cleanups.push(() => server.close());
  const token = createControlToken();
  const channel = server.expect(token, {
    stage_id: 0,
    replica_id: 0,
    engine_args: {
      omni_kv_config: {
        connector_config: { type: SHM_CONNECTOR, shm_threshold_bytes: THRESHOLD, role: 'sender', ...opts.connector },
      },
      ...opts.engineArgs,
    },
    payloads: tracker,
  });
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...controlEnv({ socketPath: server.socketPath, token, run_id: runId, stage_id: 0, replica_id: 0 }),
  };
  delete env['OMNISTAGE_PAYLOAD_DIR'];
  const proc = launchProcess({ command: process.execPath, args: [PAYLOAD_WORKER], env });
  trackPid(proc.pid);
  cleanups.push(async () => {
    channel.send({ type: 'shutdown' });
    await proc.stop(2000);
  });
  await channel.waitReady({ deadline: Date.now() + 10_000 });
  const messages: WorkerMessage[] = [];
  channel.onMessage((m) => messages.push(m));
  return { runId, tracker, channel, messages };
}

let seq = 0;
async function request(
  channel: ReplicaChannel,
  messages: WorkerMessage[],
  input: unknown,
  params: Record<string, unknown> = {},
): Promise<unknown> {
  const id = `q${seq++}`;
  channel.send({ type: 'request', request_id: id, input: input as never, params: params as never });
  const done = (): OutputMessage | undefined =>
    messages.find((m): m is OutputMessage => m.type === 'output' && m.request_id === id && m.done);
  if (!(await waitFor(() => done() !== undefined || messages.some((m) => m.type === 'request_error'), 10_000)))
    throw new Error('no answer');
  const err = messages.find((m) => m.type === 'request_error');
  if (err) throw new Error(JSON.stringify(err));
  return done()!.data;
}

describe('worker SDK payloads, in a real worker process', () => {
  it('puts small payloads inline and large ones in a shared-memory file read by key and deleted after the ack (pool off)', async () => {
    const { runId, tracker, channel, messages } = await startReplica({ connector: { pool_bytes: 0 } });

    // At or below the threshold: inline, bytes in the reference.
    const small = (await request(channel, messages, { size: THRESHOLD, seed: 1 })) as {
      tensor: PayloadRef;
      connector: unknown;
    };
    expect(small.connector).toEqual({ type: SHM_CONNECTOR, shmThresholdBytes: THRESHOLD });
    expect(small.tensor).toMatchObject({
      $payload: 1,
      via: 'inline',
      size: THRESHOLD,
      dtype: 'uint8',
      shape: [THRESHOLD],
    });
    expect(Buffer.from(small.tensor.data_base64!, 'base64').equals(pattern(THRESHOLD, 1))).toBe(true);
    expect(listRunPayloads(runId, tracker.dir)).toEqual([]);

    // Above it: a file omnistage-<run>-<key> in the payload dir (/dev/shm here), only the ref on the socket.
    const big = (await request(channel, messages, { size: THRESHOLD + 1, seed: 2 })) as { tensor: PayloadRef };
    expect(big.tensor).toEqual({
      $payload: 1,
      key: expect.stringMatching(/^s0r0_[0-9a-f]{8}_[0-9a-z]+$/),
      size: THRESHOLD + 1,
      via: 'shm',
      dtype: 'uint8',
      shape: [THRESHOLD + 1],
    });
    const file = payloadPath(runId, big.tensor.key, tracker.dir);
    expect(file.startsWith(`${tracker.dir}/omnistage-${runId}-`)).toBe(true);
    expect(readFileSync(file).equals(pattern(THRESHOLD + 1, 2))).toBe(true);

    // The consumer (this same replica, as stage 0) reads it by key, holds it, acknowledges it.
    tracker.register(big.tensor, [stageHolder(0)], 'req');
    const answer = request(channel, messages, { tensor: big.tensor }, { hold_ms: 300 });
    await new Promise((r) => setTimeout(r, 150));
    expect(existsSync(file)).toBe(true); // in flight: read, not yet acknowledged
    expect(await answer).toEqual({
      sum: sum(pattern(THRESHOLD + 1, 2)),
      size: THRESHOLD + 1,
      via: 'shm',
      key: big.tensor.key,
      pooled: false,
    });
    expect(messages).toContainEqual({ type: 'payload_ack', key: big.tensor.key });
    // The ack (sent before the output) released the hold: the file is gone.
    expect(await waitFor(() => !existsSync(file), 2_000)).toBe(true);
    expect(tracker.keys).toEqual([]);
  });

  it.skipIf(addonMissing !== undefined)(
    needsAddon(
      "writes where the orchestrator's welcome says (payload_dir), whatever the replica's env, in a pool segment",
    ),
    async () => {
      const dir = await tempDir();
      const { runId, channel, messages } = await startReplica({ dir });
      const big = (await request(channel, messages, { size: 5000, seed: 9 })) as { tensor: PayloadRef };
      expect(big.tensor).toMatchObject({ via: 'shm', size: 5000, segment_bytes: 65536 });
      expect(listRunPayloads(runId, dir)).toEqual([big.tensor.key]);
      const file = readFileSync(payloadPath(runId, big.tensor.key, dir));
      expect(file.length).toBe(65536); // the key is a link to the segment
      expect(file.subarray(0, 5000).equals(pattern(5000, 9))).toBe(true);
    },
  );

  it('a consumer that reads a payload that is gone fails the request with a clear message', async () => {
    const { channel, messages } = await startReplica();
    const ghost: PayloadRef = { $payload: 1, key: 'nothing_here', size: 10, via: 'shm' };
    await expect(request(channel, messages, { tensor: ghost })).rejects.toThrow(/payload nothing_here is gone/);
  });
});
