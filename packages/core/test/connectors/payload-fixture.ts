/**
 * The payload fixture engine (fixtures/payload-worker.mjs) as the connector tests use it: the
 * stage type that runs it, and the bytes and checksum it produces, so a test can check what a
 * consumer received without reading it back itself; and a watcher of the files in flight.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listRunPayloads } from '../../src/connectors/shm-store.js';
import type { PluginApi } from '../../src/plugins/plugin-api.js';
import type { RunningPipeline } from '../../src/orchestrate/running-pipeline.js';
import { definePlugin, type OmnistagePlugin } from '../../src/plugin.js';

export const PAYLOAD_WORKER = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'payload-worker.mjs');

/** Stage type `payload`, engine `fixture` (the payload worker); `extend` adds more (e.g. a connector class). */
export function payloadFixturePlugin(extend?: (omni: PluginApi) => void): OmnistagePlugin {
  return definePlugin({
    name: 'payload-fixture',
    apply(omni) {
      omni.defineStageType({ name: 'payload', defaultEngine: 'fixture', devicesPerReplica: () => 1 });
      omni.defineEngine({
        stageType: 'payload',
        name: 'fixture',
        resolveWorker: () => ({ command: process.execPath, args: [PAYLOAD_WORKER], env: {}, attach: 'control' }),
      });
      extend?.(omni);
    },
  });
}

/** The bytes the worker puts for input `{size, seed}`. */
export function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

/** The checksum the worker reports (`sum`) for the bytes it read. */
export function checksum(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i++) s = (s + bytes[i]! * ((i % 251) + 1)) % 1_000_000_007;
  return s;
}

/** Polls `list()` every 5 ms while `work` runs; returns its result and every name seen meanwhile. */
export async function watchWhile<T>(
  list: () => Iterable<string>,
  work: () => Promise<T>,
): Promise<{ result: T; seen: Set<string> }> {
  const seen = new Set<string>();
  let stop = false;
  const poll = (async () => {
    while (!stop) {
      for (const name of list()) seen.add(name);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    return { result: await work(), seen };
  } finally {
    stop = true;
    await poll;
  }
}

/** The keys of the run's shm payload files seen while `work` runs. */
export function watchPayloadFiles<T>(
  pipeline: RunningPipeline,
  work: () => Promise<T>,
): Promise<{ result: T; seen: Set<string> }> {
  return watchWhile(() => listRunPayloads(pipeline.runId, pipeline.payloads.dir), work);
}
