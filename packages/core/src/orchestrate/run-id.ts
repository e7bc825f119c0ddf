import { randomBytes } from 'node:crypto';

/** A short, unique, sortable id for one bring-up (time prefix + randomness). */
export function newRunId(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
