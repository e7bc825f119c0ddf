/**
 * The status of an error answer comes from core's catalogue: every code reaches the client as
 * itself, with the status docs/errors.md lists, message and hint; only what is not an OmniError is
 * hidden (a bug), and a host fault is OMNI_ENVIRONMENT.
 */
import { open } from 'node:fs/promises';
import { ERROR_CATALOGUE, OmniError, type ErrorCode } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { HttpError, badField, fromPipelineError } from '../src/http-error.js';

describe('error answers', () => {
  it('every catalogue code answers with its own code and the status the catalogue gives it', () => {
    const answers = Object.keys(ERROR_CATALOGUE).map((code) => {
      const e = fromPipelineError(new OmniError(code as ErrorCode, `${code} happened`, { hint: 'fix it' }));
      return [e.code, e.status, e.body.error.message];
    });
    expect(answers).toEqual(
      Object.entries(ERROR_CATALOGUE).map(([code, entry]) => [code, entry.httpStatus, `${code} happened (fix it)`]),
    );
  });

  it('a plugin failure is its own code with its status, not 500 OMNI_INTERNAL', () => {
    const e = fromPipelineError(
      new OmniError('OMNI_PLUGIN_FAILED', 'plugin "p" failed in hook "attach" (stage 0 replica 0): TypeError: x', {
        context: { plugin: 'p', hook: 'attach' },
      }),
    );
    expect([e.status, e.code, e.type]).toEqual([
      ERROR_CATALOGUE.OMNI_PLUGIN_FAILED.httpStatus,
      'OMNI_PLUGIN_FAILED',
      'server_error',
    ]);
  });

  it('a thrown non-OmniError is a bug answered without its text; a host fault is OMNI_ENVIRONMENT', async () => {
    const bug = fromPipelineError(new TypeError('secret internals'));
    expect([bug.status, bug.code, bug.message.includes('secret')]).toEqual([500, 'OMNI_INTERNAL', false]);
    const missing = await open('/nonexistent-omnistage-path/x').catch((e: unknown) => e);
    expect(fromPipelineError(missing).code).toBe('OMNI_INTERNAL');
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      syscall: 'write',
      path: '/dev/shm/omnistage-x',
    });
    const env = fromPipelineError(full);
    expect([env.status, env.code]).toEqual([ERROR_CATALOGUE.OMNI_ENVIRONMENT.httpStatus, 'OMNI_ENVIRONMENT']);
    expect(env.message).toContain('/dev/shm/omnistage-x');
  });

  it('an HttpError passes as it is; badField is a 400 naming the field', () => {
    const own = new HttpError(413, 'OMNI_HTTP_INVALID_REQUEST', 'too large');
    expect(fromPipelineError(own)).toBe(own);
    expect(badField('messages[0].role', 'role must be user')).toMatchObject({ status: 400, param: 'messages[0].role' });
  });
});
