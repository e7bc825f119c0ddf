/**
 * A full shared-memory file system is an error for the request that needed the space, never a
 * SIGBUS for the producer: pool segments are reserved (posix_fallocate) before they are mapped, and
 * a payload file that cannot be written fails with OMNI_PAYLOAD_NO_SPACE, as does a segment.
 *
 * The full file system is a 1 MiB tmpfs mounted in a mount namespace of the producer's own
 * (`unshare -rm`: needs no root where user namespaces are enabled, and leaves nothing mounted).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, CORE_DIR, requireBuilt, tempDir } from '../runtime/helpers.js';
import { addonMissing, needsAddon } from './addon.js';

const FIXTURE = join(CORE_DIR, 'test', 'connectors', 'fixtures', 'full-shm-producer.mjs');
const MOUNT = 'mount -t tmpfs -o size=1m omnistage-test "$1" && shift && exec "$@"';

/** Why a small tmpfs cannot be mounted here (undefined: it can). */
function cannotMount(): string | undefined {
  const probe = spawnSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=64k omnistage-probe /tmp'], {
    encoding: 'utf8',
  });
  if (probe.error !== undefined) return `unshare is not available (${probe.error.message})`;
  if (probe.status !== 0) return `no user and mount namespace for a test tmpfs (${probe.stderr.trim()})`;
  return undefined;
}
const skipped = cannotMount();

interface PutResult {
  key: string;
  segment_bytes?: number | null;
  code?: string | null;
  message?: string;
}

/** Runs the producer on a 1 MiB tmpfs; its exit and what it printed. */
async function produceOnFullTmpfs(size: number, env: Record<string, string> = {}) {
  const mountPoint = await tempDir();
  const res = spawnSync(
    'unshare',
    ['-rm', 'sh', '-c', MOUNT, 'sh', mountPoint, process.execPath, FIXTURE, mountPoint, String(size), '40'],
    { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 },
  );
  const line = res.stdout.trim().split('\n').at(-1) ?? '';
  const report = line.startsWith('{') ? (JSON.parse(line) as { puts: PutResult[]; after: PutResult }) : undefined;
  return { status: res.status, signal: res.signal, stderr: res.stderr, report };
}

describe.skipIf(skipped !== undefined)(
  `a full payload directory${skipped === undefined ? '' : ` (skipped: ${skipped})`}`,
  () => {
    beforeAll(() => requireBuilt('connectors/shm-pool.ts', 'connectors/shm-store.ts', 'connectors/shm-native.ts'));
    afterAll(cleanupTempDirs);

    it.skipIf(addonMissing !== undefined)(
      needsAddon(
        'pool segments: the put that finds no room fails with OMNI_PAYLOAD_NO_SPACE, the producer lives on and stores again once room is freed',
      ),
      async () => {
        const { status, signal, stderr, report } = await produceOnFullTmpfs(200 * 1024);
        expect({ status, signal }, stderr).toEqual({ status: 0, signal: null });
        const refused = report!.puts.at(-1)!;
        expect(refused.code).toBe('OMNI_PAYLOAD_NO_SPACE');
        expect(refused.message).toMatch(/no space left.*ENOSPC/);
        const stored = report!.puts.slice(0, -1);
        expect(stored.length).toBeGreaterThan(0);
        expect(stored.every((p) => p.segment_bytes === 256 * 1024)).toBe(true);
        expect(report!.after).toEqual({ key: 'again', segment_bytes: 256 * 1024 });
      },
    );

    it('payload files of their own (no addon): the same error, and the producer stores again once room is freed', async () => {
      const { status, signal, stderr, report } = await produceOnFullTmpfs(300 * 1024, { OMNISTAGE_NO_NATIVE: '1' });
      expect({ status, signal }, stderr).toEqual({ status: 0, signal: null });
      const refused = report!.puts.at(-1)!;
      expect(refused.code).toBe('OMNI_PAYLOAD_NO_SPACE');
      expect(refused.message).toMatch(/no space left.*ENOSPC/);
      expect(report!.puts.slice(0, -1).every((p) => p.segment_bytes === null)).toBe(true);
      expect(report!.after).toEqual({ key: 'again', segment_bytes: null });
    });
  },
);
