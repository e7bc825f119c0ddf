/**
 * A host fault is not a bug in omnistage: a real EMFILE (a child process whose open-files limit is
 * lowered with `ulimit -n`) becomes OMNI_ENVIRONMENT naming the resource and the fix, while a real
 * ENOENT (a wrong path, not the host) keeps the caller's code.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { toOmniError } from '../src/errors.js';

const ERRORS_DIST = pathToFileURL(join(import.meta.dirname, '..', 'dist', 'errors.js')).href;

describe('environment faults', () => {
  it('EMFILE from a process out of file descriptors is OMNI_ENVIRONMENT with the fix, not OMNI_INTERNAL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'omni-envfault-'));
    try {
      const script = `
        import { openSync } from 'node:fs';
        const { toOmniError } = await import(${JSON.stringify(ERRORS_DIST)});
        const fds = [];
        try { for (;;) fds.push(openSync('/dev/null', 'r')); }
        catch (err) { console.log(JSON.stringify({ ...toOmniError(err).toJSON(), opened: fds.length })); }
      `;
      const r = spawnSync(
        'bash',
        ['-c', `ulimit -n 64 && exec "${process.execPath}" --input-type=module -e "$0"`, script],
        {
          cwd: dir,
          encoding: 'utf8',
        },
      );
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout) as {
        code: string;
        message: string;
        hint: string;
        context: Record<string, unknown>;
      };
      expect(out).toMatchObject({
        code: 'OMNI_ENVIRONMENT',
        context: { errno: 'EMFILE', path: '/dev/null', syscall: 'open' },
      });
      expect(out.message).toMatch(/^too many open files in this process \(open \/dev\/null\): EMFILE/);
      expect(out.hint).toContain('ulimit -n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ENOENT (a wrong path) keeps the fallback code', async () => {
    const err = await readFile(join(tmpdir(), 'omni-no-such-file-here')).catch((e: unknown) => e);
    const e = toOmniError(err, 'OMNI_CONFIG_NOT_FOUND');
    expect([e.code, e.cause]).toEqual(['OMNI_CONFIG_NOT_FOUND', err]);
  });
});
