import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OmniError } from '../../src/errors.js';
import {
  deletePayload,
  listRunPayloads,
  PAYLOAD_DIR_ENV,
  payloadDir,
  payloadFileName,
  payloadPath,
  payloadReadPath,
  readPayload,
  SHM_MAP_ENV,
  sweepRunPayloads,
  writePayload,
} from '../../src/connectors/shm-store.js';
import { NO_NATIVE_ENV } from '../../src/connectors/shm-native.js';
import { needsAddon } from './addon.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omni-shm-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('shared-memory payload store', () => {
  it('lives in /dev/shm when it is writable, else the OS temp dir; the env var overrides', () => {
    const expected = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    expect(payloadDir({})).toBe(expected);
    expect(payloadDir({ [PAYLOAD_DIR_ENV]: dir })).toBe(dir);
  });

  it('names files omnistage-<run_id>-<key> and refuses names that could escape the directory', () => {
    expect(payloadFileName('run1', 's0r0_ab_0')).toBe('omnistage-run1-s0r0_ab_0');
    expect(() => payloadFileName('run1', '../x')).toThrow(/not valid/);
    expect(() => payloadFileName('a/b', 'k')).toThrow(/cannot name/);
  });

  it('writes once (0600), reads by key, checks the size, deletes', () => {
    const bytes = Buffer.from('hello payload');
    const path = writePayload('run1', 'k1', bytes, dir);
    expect(path).toBe(join(dir, 'omnistage-run1-k1'));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(() => writePayload('run1', 'k1', Buffer.from('again'), dir)).toThrow(); // never overwritten
    expect(readPayload('run1', 'k1', { dir }).toString()).toBe('hello payload');
    expect(readPayload('run1', 'k1', { dir, size: bytes.length }).toString()).toBe('hello payload');
    expect(() => readPayload('run1', 'k1', { dir, size: 3 })).toThrow(/13 bytes, its reference says 3/);
    const staging = Buffer.alloc(64);
    const view = readPayload('run1', 'k1', { dir, into: staging });
    expect(view.toString()).toBe('hello payload');
    expect(view.buffer).toBe(staging.buffer);
    expect(() => readPayload('run1', 'k1', { dir, into: Buffer.alloc(4) })).toThrow(/only 4/);
    expect(deletePayload('run1', 'k1', dir)).toBe(true);
    expect(deletePayload('run1', 'k1', dir)).toBe(false);
    expect(() => readPayload('run1', 'k1', { dir })).toThrow(/is gone/);
  });

  it('writes large payloads whole', () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0xab);
    writePayload('run1', 'big', big, dir);
    expect(readPayload('run1', 'big', { dir, size: big.length }).equals(big)).toBe(true);
  });

  it("sweeps every file of a run and only that run's", () => {
    writePayload('run-a', 'k1', Buffer.from('1'), dir);
    writePayload('run-a', 'k2', Buffer.from('2'), dir);
    writePayload('run-a-b', 'k1', Buffer.from('3'), dir); // a run whose id extends run-a's
    writePayload('run-c', 'k1', Buffer.from('4'), dir);
    writeFileSync(join(dir, 'unrelated'), 'x');
    expect(listRunPayloads('run-a', dir).sort()).toEqual(['k1', 'k2']);
    expect(sweepRunPayloads('run-a', dir)).toBe(2);
    expect(readdirSync(dir).sort()).toEqual(['omnistage-run-a-b-k1', 'omnistage-run-c-k1', 'unrelated']);
    expect(sweepRunPayloads('run-a', dir)).toBe(0);
    expect(payloadPath('run-c', 'k1', dir)).toBe(join(dir, 'omnistage-run-c-k1'));
  });
});

// The zero-copy read: the addon that `npm run build` compiles into dist/native (see
// scripts/build-native.mjs), and the read() it falls back to. Real files in /dev/shm (or the OS
// temp dir where there is none).
const pkgRoot = join(import.meta.dirname, '..', '..');
const addonPath = join(pkgRoot, 'dist', 'native', 'shm_map.node');

vi.stubEnv(SHM_MAP_ENV, undefined);
const mmapLoads = payloadReadPath() === 'mmap';
vi.unstubAllEnvs();

/** Whether `path` is mapped into this process now (where /proc says; else `expected`, unchecked). */
function mapped(path: string, expected: boolean): boolean {
  return existsSync('/proc/self/maps') ? readFileSync('/proc/self/maps', 'utf8').includes(path) : expected;
}

describe('the shm payload read path', () => {
  const disabled = process.env[NO_NATIVE_ENV] === '1';
  it.skipIf(disabled)(
    `is mmap where the build could compile the addon (a compiler and Node-API headers exist)${disabled ? ` (skipped: ${NO_NATIVE_ENV}=1)` : ''}`,
    () => {
      const probe = spawnSync(process.execPath, [join(pkgRoot, 'scripts', 'build-native.mjs'), '--probe'], {
        encoding: 'utf8',
      });
      if (probe.status !== 0) {
        // No toolchain here: the build skipped the addon on purpose, and reads fall back.
        expect(probe.stdout).toMatch(/no C compiler|no Node-API headers|not supported/);
        expect(mmapLoads).toBe(existsSync(addonPath));
        return;
      }
      expect(
        existsSync(addonPath),
        `${addonPath} missing although \`${probe.stdout.trim()}\` is there: the build script did not build it`,
      ).toBe(true);
      expect(mmapLoads).toBe(true);
      if (process.env[SHM_MAP_ENV] !== '0') expect(payloadReadPath()).toBe('mmap');
      vi.stubEnv(SHM_MAP_ENV, '0');
      expect(payloadReadPath()).toBe('read');
      vi.unstubAllEnvs();
    },
  );

  it(`${NO_NATIVE_ENV}=1 leaves the addon unloaded: reads copy, a producer writes files of their own (no pool)`, () => {
    const probe = `const { payloadReadPath } = await import(${JSON.stringify(join(pkgRoot, 'dist', 'connectors', 'shm-store.js'))});
      const { shmNative } = await import(${JSON.stringify(join(pkgRoot, 'dist', 'connectors', 'shm-native.js'))});
      process.stdout.write(JSON.stringify({ read: payloadReadPath(), addon: shmNative() !== undefined }));`;
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      });
    const off = run({ [NO_NATIVE_ENV]: '1' });
    expect(JSON.parse(off.stdout), off.stderr).toEqual({ read: 'read', addon: false });
    const on = run({ [NO_NATIVE_ENV]: '0' });
    expect(JSON.parse(on.stdout), on.stderr).toEqual(
      existsSync(addonPath) ? { read: 'mmap', addon: true } : { read: 'read', addon: false },
    );
  });

  it.skipIf(!mmapLoads)(needsAddon('addon: checks its arguments, and the size again before mapping'), () => {
    const { mapPayload } = createRequire(import.meta.url)(addonPath) as { mapPayload: (...args: unknown[]) => Buffer };
    const file = join(dir, 'abc');
    writeFileSync(file, 'abc');
    const fd = openSync(file, 'r');
    try {
      expect(() => mapPayload(file, 3)).toThrow(TypeError);
      expect(() => mapPayload(fd)).toThrow(/fd and size must be non-negative integers/);
      expect(() => mapPayload(fd, -1)).toThrow(TypeError);
      expect(() => mapPayload(fd, 1.5)).toThrow(TypeError);
      expect(() => mapPayload(fd, 4)).toThrow(/the file has 3 bytes, the caller expected 4/);
      expect(() => mapPayload(987654, 3)).toThrow(/fstat failed: Bad file descriptor/);
      expect(mapPayload(fd, 3).toString()).toBe('abc');
    } finally {
      closeSync(fd);
    }
  });

  describe.each([
    { path: 'mmap' as const, env: undefined },
    { path: 'read' as const, env: '0' },
  ])('readPayload via $path', ({ path: readPath, env }) => {
    let shmDir: string;
    beforeEach(async () => {
      shmDir = await mkdtemp(join(payloadDir({}), 'omni-shm-test-'));
      vi.stubEnv(SHM_MAP_ENV, env);
    });
    afterEach(async () => {
      vi.unstubAllEnvs();
      await rm(shmDir, { recursive: true, force: true });
    });
    const active = readPath === 'read' || mmapLoads;
    const title = (t: string): string => (readPath === 'mmap' ? needsAddon(t) : t);

    it.skipIf(!active)(
      title('returns the bytes, writes into them stay private, the file can go while they are read'),
      () => {
        expect(payloadReadPath()).toBe(readPath);
        const bytes = randomBytes(3 * 4096 + 7);
        const file = writePayload('run1', 'k1', bytes, shmDir);
        const back = readPayload('run1', 'k1', { dir: shmDir, size: bytes.length });
        expect(back).toBeInstanceOf(Buffer);
        expect(back.equals(bytes)).toBe(true);
        expect(mapped(file, readPath === 'mmap')).toBe(readPath === 'mmap');

        back[0] = back[0]! ^ 0xff;
        back.fill(0x5a, 4096, 8192);
        expect(readFileSync(file).equals(bytes)).toBe(true);
        const untouched = readPayload('run1', 'k1', { dir: shmDir });
        untouched.fill(0xa5, 8192); // pages never read before
        expect(readFileSync(file).equals(bytes)).toBe(true);
        expect(readPayload('run1', 'k1', { dir: shmDir }).equals(bytes)).toBe(true);

        expect(deletePayload('run1', 'k1', shmDir)).toBe(true);
        expect(existsSync(file)).toBe(false);
        expect(back.subarray(1, 4096).equals(bytes.subarray(1, 4096))).toBe(true);
        expect(back.subarray(8192).equals(bytes.subarray(8192))).toBe(true);
        back.fill(1);
        expect(back.every((b) => b === 1)).toBe(true);
      },
    );

    it.skipIf(!active)(title('keeps the errors: size mismatch, gone file, a buffer too small'), () => {
      writePayload('run1', 'k1', Buffer.from('hello payload'), shmDir);
      const err = (() => {
        try {
          readPayload('run1', 'k1', { dir: shmDir, size: 3 });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(OmniError);
      expect((err as OmniError).code).toBe('OMNI_REQUEST_FAILED');
      expect((err as OmniError).message).toMatch(/^payload k1 has 13 bytes, its reference says 3$/);
      expect(() => readPayload('run1', 'k1', { dir: shmDir, into: Buffer.alloc(4) })).toThrow(
        /payload k1 has 13 bytes, the buffer to read it into only 4/,
      );
      deletePayload('run1', 'k1', shmDir);
      expect(() => readPayload('run1', 'k1', { dir: shmDir, size: 13 })).toThrow(
        /^payload k1 is gone \(.*omnistage-run1-k1\): it was released \(every consumer acknowledged it, or its request ended\) or the run was swept$/,
      );
    });

    it.skipIf(!active)(title('reads an empty payload, and into a given buffer with read() either way'), () => {
      writePayload('run1', 'empty', Buffer.alloc(0), shmDir);
      const empty = readPayload('run1', 'empty', { dir: shmDir, size: 0 });
      expect(empty).toBeInstanceOf(Buffer);
      expect(empty.length).toBe(0);

      const bytes = randomBytes(10_000);
      const file = writePayload('run1', 'k2', bytes, shmDir);
      const staging = Buffer.alloc(16_384);
      const view = readPayload('run1', 'k2', { dir: shmDir, size: bytes.length, into: staging });
      expect(view.buffer).toBe(staging.buffer);
      expect(view.equals(bytes)).toBe(true);
      expect(mapped(file, false)).toBe(false);
    });
  });
});
