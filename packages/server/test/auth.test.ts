import { describe, expect, it } from 'vitest';
import { bearerMatcher, isLoopbackHost } from '../src/auth.js';

describe('API key check', () => {
  const ok = bearerMatcher('s3cret-key');
  it('accepts exactly "Bearer <key>" (scheme case-insensitive, as RFC 6750 allows)', () => {
    expect(ok('Bearer s3cret-key')).toBe(true);
    expect(ok('bearer s3cret-key')).toBe(true);
  });
  it('refuses a missing header, another scheme, a prefix, a longer key and the empty key', () => {
    for (const h of [undefined, '', 'Basic s3cret-key', 'Bearer s3cret', 'Bearer s3cret-key2', 'Bearer ', 's3cret-key'])
      expect(ok(h), String(h)).toBe(false);
  });
});

describe('loopback hosts (no warning without a key)', () => {
  it('127.0.0.0/8, ::1 and localhost are loopback; anything else is not', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.5', 'example.com', '128.0.0.1'])
      expect(isLoopbackHost(h), h).toBe(false);
  });
});
