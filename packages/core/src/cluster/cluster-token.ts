import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { OmniError } from '../errors.js';

/** Which replica start a token is for: a token of another incarnation (an older start, an older lease) is stale. */
export interface TokenScope {
  run_id: string;
  stage_id: number;
  replica_id: number;
  incarnation: string;
}

/**
 * The token a remote replica presents in its hello: HMAC-SHA256 of its scope under the cluster
 * secret. Head and agent compute it independently, so no token is ever stored in etcd.
 */
export function deriveReplicaToken(secret: Buffer, scope: TokenScope): string {
  return createHmac('sha256', secret)
    .update(`omnistage/v1/${scope.run_id}/${scope.stage_id}/${scope.replica_id}/${scope.incarnation}`)
    .digest('base64url');
}

/**
 * The tokens of a run's data plane (docs/scale-out.md, "Payloads across hosts"): `fetch` is given
 * to every replica of the run in its welcome and lets it read payloads by key from any host's
 * payload server; `release` (freeing a payload) stays with the head. Derived like replica tokens,
 * so payload servers check them without any being stored.
 */
export function derivePayloadToken(secret: Buffer, runId: string, op: 'fetch' | 'release'): string {
  return createHmac('sha256', secret).update(`omnistage/v1/${runId}/payloads/${op}`).digest('base64url');
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokensMatch(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Reads `--cluster-secret-file`: at least 16 bytes, not readable by group or others. */
export async function readClusterSecret(path: string): Promise<Buffer> {
  const where = {
    hint: 'create one with `head -c 32 /dev/urandom > secret && chmod 600 secret` and give the same file to the head and every agent',
  };
  let bytes: Buffer;
  try {
    if (((await stat(path)).mode & 0o077) !== 0) {
      throw new OmniError('OMNI_USAGE', `--cluster-secret-file ${path} is readable by group or others`, {
        hint: `chmod 600 ${path}`,
      });
    }
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof OmniError) throw err;
    throw new OmniError('OMNI_USAGE', `cannot read --cluster-secret-file ${path}: ${(err as Error).message}`, where);
  }
  const secret = Buffer.from(bytes.toString('latin1').trim(), 'latin1');
  if (secret.length < 16)
    throw new OmniError(
      'OMNI_USAGE',
      `--cluster-secret-file ${path} holds ${secret.length} bytes; at least 16 are needed`,
      where,
    );
  return secret;
}

/**
 * Without `--cluster-secret-file` (loopback or `--insecure` only): a secret anyone who can read
 * etcd can compute. It keeps tokens per incarnation (stale ones are still refused), not secret.
 */
export function insecureSecret(runId: string): Buffer {
  return Buffer.from(`omnistage-insecure/${runId}`);
}
