/**
 * Payload files as another local user or a misbehaving replica may leave them (issue 15, item 6):
 * the orchestrator's reads follow no link, accept only regular files of the announced size, and the
 * run's payload names are not visible in the world-readable payload directory.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PayloadRef } from '../../src/connectors/payload-ref.js';
import { PayloadTracker, USER_HOLDER } from '../../src/connectors/payload-tracker.js';
import { PAYLOAD_DIR_ENV, payloadPath, sweepRunPayloads, writePayload } from '../../src/connectors/shm-store.js';

let base: string;
const trackers: PayloadTracker[] = [];
const savedEnv = process.env[PAYLOAD_DIR_ENV];
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'omni-payload-files-'));
  process.env[PAYLOAD_DIR_ENV] = base;
});
afterEach(async () => {
  for (const t of trackers.splice(0)) await t.close();
  if (savedEnv === undefined) delete process.env[PAYLOAD_DIR_ENV];
  else process.env[PAYLOAD_DIR_ENV] = savedEnv;
  await rm(base, { recursive: true, force: true });
});

function tracker(runId: string): PayloadTracker {
  const t = new PayloadTracker(runId);
  trackers.push(t);
  return t;
}

/** What the user would get for a final output holding `ref`. */
function resolve(t: PayloadTracker, ref: PayloadRef): Promise<unknown> {
  t.register(ref, [USER_HOLDER], 'r1', 0);
  return t.resolveForUser({ tensor: ref });
}

describe("the orchestrator's reads of payload files", () => {
  it('do not follow a symlink a replica planted at a payload name', async () => {
    const t = tracker('run-link');
    const secret = join(base, 'secret');
    writeFileSync(secret, 'private bytes', { mode: 0o600 });
    symlinkSync(secret, payloadPath(t.runId, 'k1', t.dir));
    await expect(resolve(t, { $payload: 1, key: 'k1', size: 13, via: 'shm' })).rejects.toThrow(
      /k1.*not a regular file|symbolic link/,
    );
  });

  it('refuse a FIFO at once instead of blocking on it (request and teardown)', async () => {
    const t = tracker('run-fifo');
    execFileSync('mkfifo', [payloadPath(t.runId, 'k2', t.dir)]);
    await expect(resolve(t, { $payload: 1, key: 'k2', size: 10, via: 'shm' })).rejects.toThrow(
      /k2.*not a regular file/,
    );
  }, 10_000);

  it('refuse a file whose size is not the one its reference announced', async () => {
    const t = tracker('run-size');
    writePayload(t.runId, 'k3', Buffer.alloc(300, 1), t.dir);
    await expect(resolve(t, { $payload: 1, key: 'k3', size: 10, via: 'shm' })).rejects.toThrow(
      /k3 has 300 bytes, its reference says 10/,
    );
  });
});

describe("a run's payload directory", () => {
  it('is a private 0700 directory of this user, so the shared listing names no payload', () => {
    const t = tracker('run-private');
    expect(dirname(t.dir)).toBe(base);
    const st = statSync(t.dir);
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(process.getuid!());
    writePayload(t.runId, 's0r0_ab_1', Buffer.from('x'), t.dir);
    expect(readdirSync(base).join(' ')).not.toMatch(/s0r0_ab_1/);
    // The directory's name is not derived from the run id alone: a second run gets another one.
    const u = tracker('run-private');
    expect(u.dir).not.toBe(t.dir);
  });

  it('goes at teardown, and the stale-run sweep removes it when its orchestrator died', async () => {
    const t = tracker('run-gone');
    writePayload(t.runId, 'a', Buffer.from('a'), t.dir);
    await t.close();
    expect(readdirSync(base)).toEqual([]);
    const dead = new PayloadTracker('run-dead'); // never closed: its orchestrator was SIGKILLed
    writePayload(dead.runId, 'b', Buffer.from('b'), dead.dir);
    writePayload(dead.runId, 'c', Buffer.from('c'), dead.dir);
    expect(sweepRunPayloads('run-dead', base)).toBe(2);
    expect(readdirSync(base)).toEqual([]);
  });
});
