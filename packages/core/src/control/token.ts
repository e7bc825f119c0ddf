import { createHash, randomBytes } from 'node:crypto';

/** A fresh per-replica secret (192 bits, URL-safe) that the worker must present in its hello. */
export function createControlToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Key under which an expected token is stored. Looking tokens up by their hash instead of the
 * token itself means lookup timing reveals nothing usable about a valid token.
 */
export function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
