import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deriveReplicaToken, readClusterSecret, tokensMatch } from '../../src/cluster/cluster-token.js';
import { fingerprintDifferences, fingerprintHash } from '../../src/cluster/config-fingerprint.js';

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('replica tokens', () => {
  const secret = Buffer.from('0123456789abcdef0123');
  const scope = { run_id: 'r1', stage_id: 1, replica_id: 0, incarnation: 'L.1.0' };

  it('differ per run, stage, replica, incarnation and secret', () => {
    const base = deriveReplicaToken(secret, scope);
    const others = [
      deriveReplicaToken(secret, { ...scope, run_id: 'r2' }),
      deriveReplicaToken(secret, { ...scope, stage_id: 2 }),
      deriveReplicaToken(secret, { ...scope, replica_id: 1 }),
      deriveReplicaToken(secret, { ...scope, incarnation: 'L.1.1' }),
      deriveReplicaToken(Buffer.from('another-secret-of-16+'), scope),
    ];
    expect(new Set([base, ...others]).size).toBe(6);
    expect(tokensMatch(base, deriveReplicaToken(secret, scope))).toBe(true);
    for (const o of others) expect(tokensMatch(o, base)).toBe(false);
    expect(tokensMatch('short', base)).toBe(false);
  });

  it('reads a secret file only when private and long enough', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'omnistage-secret-'));
    dirs.push(dir);
    const file = join(dir, 's');
    await writeFile(file, 'x'.repeat(32));
    await chmod(file, 0o644);
    await expect(readClusterSecret(file)).rejects.toMatchObject({
      code: 'OMNI_USAGE',
      message: expect.stringMatching(/readable by group or others/),
    });
    await chmod(file, 0o600);
    expect((await readClusterSecret(file)).length).toBe(32);
    await writeFile(file, 'short\n');
    await expect(readClusterSecret(file)).rejects.toMatchObject({
      message: expect.stringMatching(/holds 5 bytes; at least 16/),
    });
    await expect(readClusterSecret(join(dir, 'missing'))).rejects.toMatchObject({
      code: 'OMNI_USAGE',
      message: expect.stringMatching(/cannot read/),
    });
  });
});

describe('pipeline fingerprints', () => {
  it('hash alike whatever the key order, and name where they differ', () => {
    const head = {
      stages: [
        { stage_id: 0, engine_args: { a: 1, b: 2 } },
        { stage_id: 1, engine_args: { max_num_seqs: 4 } },
      ],
    };
    const same = {
      stages: [
        { engine_args: { b: 2, a: 1 }, stage_id: 0 },
        { stage_id: 1, engine_args: { max_num_seqs: 4 } },
      ],
    };
    const other = {
      stages: [
        { stage_id: 0, engine_args: { a: 1, b: 2 } },
        { stage_id: 1, engine_args: { max_num_seqs: 8 } },
      ],
    };
    expect(fingerprintHash(head)).toBe(fingerprintHash(same));
    expect(fingerprintHash(head)).not.toBe(fingerprintHash(other));
    expect(fingerprintDifferences(head, same)).toEqual([]);
    expect(fingerprintDifferences(head, other)).toEqual([
      'stages[1].engine_args.max_num_seqs: the head has 4, this agent has 8',
    ]);
    expect(fingerprintDifferences({ stages: [1] }, { stages: [1, 2] })).toEqual([
      'stages[1]: the head has null, this agent has 2',
    ]);
  });
});
