import { expect } from 'vitest';
import { OmniError } from '../../src/errors.js';

/** Runs `fn`, asserts it throws an OmniError, and returns it for further assertions. */
export function catchOmni(fn: () => unknown): OmniError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OmniError);
    return err as OmniError;
  }
  throw new Error('expected an OmniError, nothing was thrown');
}

/** Awaits `fn`, asserts it rejects with an OmniError, and returns it. */
export async function catchOmniAsync(fn: () => Promise<unknown>): Promise<OmniError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OmniError);
    return err as OmniError;
  }
  throw new Error('expected an OmniError, nothing was thrown');
}
