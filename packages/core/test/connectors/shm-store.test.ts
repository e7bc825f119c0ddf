import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  deletePayload,
  listRunPayloads,
  PAYLOAD_DIR_ENV,
  payloadDir,
  payloadFileName,
  payloadPath,
  readPayload,
  sweepRunPayloads,
  writePayload,
} from '../../src/connectors/shm-store.js';

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
