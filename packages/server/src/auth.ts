import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Checks `Authorization: Bearer <key>` in constant time: both sides are hashed first, so neither
 * the key's content nor its length leaks through timing.
 */
export function bearerMatcher(apiKey: string): (authorization: string | undefined) => boolean {
  const want = createHash('sha256').update(apiKey).digest();
  return (authorization) => {
    const m = /^Bearer (.+)$/i.exec(authorization ?? '');
    const got = createHash('sha256')
      .update(m?.[1] ?? '')
      .digest();
    return timingSafeEqual(want, got) && m !== null;
  };
}

/** True for addresses only this host can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(host);
}
