/**
 * The payload fixture engine (fixtures/payload-worker.mjs) as the connector tests use it: the
 * stage type that runs it, and the bytes and checksum it produces, so a test can check what a
 * consumer received without reading it back itself.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Omnistage } from '../../src/omnistage.js';
import { definePlugin, type OmnistagePlugin } from '../../src/plugin.js';

export const PAYLOAD_WORKER = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'payload-worker.mjs');

/** Stage type `payload`, engine `fixture` (the payload worker); `extend` adds more (e.g. a connector class). */
export function payloadFixturePlugin(extend?: (omni: Omnistage) => void): OmnistagePlugin {
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
