import { isOmniError, type OmniError } from '@omnistage/core';

/** Runs `fn` and returns the OmniError it throws (fails the test when it throws nothing or something else). */
export function errorOf(fn: () => unknown): OmniError {
  try {
    fn();
  } catch (err) {
    if (isOmniError(err)) return err;
    throw err;
  }
  throw new Error('expected an OmniError');
}
