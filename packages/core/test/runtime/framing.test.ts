import { describe, expect, it } from 'vitest';
import { isOmniError } from '../../src/errors.js';
import { LineDecoder } from '../../src/control/framing.js';
import {
  encodeMessage,
  parseOrchestratorMessage,
  parseWorkerMessage,
  PROTOCOL_VERSION,
} from '../../src/control/protocol.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isOmniError(err) ? err.code : 'not an OmniError';
  }
  return undefined;
}

describe('LineDecoder', () => {
  it('joins a line split across chunks', () => {
    const d = new LineDecoder();
    expect(d.push('{"type":')).toEqual([]);
    expect(d.pending).toBe(8);
    expect(d.push('"heartbeat"}')).toEqual([]);
    expect(d.push('\n')).toEqual(['{"type":"heartbeat"}']);
    expect(d.pending).toBe(0);
  });

  it('returns several lines from one chunk and keeps the tail', () => {
    const d = new LineDecoder();
    expect(d.push('a\nb\r\n\nc')).toEqual(['a', 'b']);
    expect(d.push('d\n')).toEqual(['cd']);
  });

  it('decodes UTF-8 characters split between chunks', () => {
    const d = new LineDecoder();
    const bytes = Buffer.from('{"t":"é😀"}\n');
    const cut = bytes.indexOf(0xf0) + 2; // inside the 4-byte emoji
    expect(d.push(bytes.subarray(0, cut))).toEqual([]);
    expect(d.push(bytes.subarray(cut))).toEqual(['{"t":"é😀"}']);
  });

  it('rejects a line longer than the limit, complete or still partial', () => {
    expect(codeOf(() => new LineDecoder(10).push('01234567890\n'))).toBe('OMNI_PROTOCOL');
    const d = new LineDecoder(10);
    expect(d.push('0123456789')).toEqual([]);
    expect(codeOf(() => d.push('x'))).toBe('OMNI_PROTOCOL');
    expect(new LineDecoder(10).push('0123456789\n')).toEqual(['0123456789']);
  });
});

describe('protocol messages', () => {
  it('round-trips through encodeMessage and the parsers', () => {
    const hello = { type: 'hello', v: PROTOCOL_VERSION, token: 't', stage_id: 0, replica_id: 1, pid: 42 } as const;
    const line = encodeMessage(hello);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1).includes('\n')).toBe(false);
    expect(parseWorkerMessage(line.trim())).toEqual(hello);
    const request = { type: 'request', request_id: 'r1', input: { text: 'a\nb' }, params: {} } as const;
    expect(parseOrchestratorMessage(encodeMessage(request).trim())).toEqual(request);
  });

  it('accepts every message type with its required fields', () => {
    for (const m of [
      { type: 'ready' },
      { type: 'ready', info: { num_gpu_blocks: 10 } },
      { type: 'heartbeat' },
      { type: 'output', request_id: 'r', seq: 0, data: null, done: true },
      { type: 'request_error', request_id: 'r', message: 'x' },
      { type: 'log', level: 'warn', message: 'x' },
    ]) {
      expect(parseWorkerMessage(JSON.stringify(m))).toEqual(m);
    }
    for (const m of [
      { type: 'welcome', v: 1, run_id: 'r', stage_id: 0, replica_id: 0, engine_args: {}, metadata: {} },
      {
        type: 'welcome',
        v: 1,
        run_id: 'r',
        stage_id: 0,
        replica_id: 0,
        engine_args: {},
        metadata: {},
        payload_dir: '/d',
        connectors: { C: 'file:///c.js' },
      },
      { type: 'abort', request_id: 'r' },
      { type: 'shutdown' },
      { type: 'error', code: 'OMNI_PROTOCOL', message: 'x' },
    ]) {
      expect(parseOrchestratorMessage(JSON.stringify(m))).toEqual(m);
    }
  });

  it('rejects invalid JSON, unknown types, wrong directions and missing fields', () => {
    expect(codeOf(() => parseWorkerMessage('{nope'))).toBe('OMNI_PROTOCOL');
    expect(codeOf(() => parseWorkerMessage('[1]'))).toBe('OMNI_PROTOCOL');
    expect(codeOf(() => parseWorkerMessage('{"type":"bogus"}'))).toBe('OMNI_PROTOCOL');
    expect(codeOf(() => parseWorkerMessage('{"type":"toString"}'))).toBe('OMNI_PROTOCOL');
    expect(codeOf(() => parseWorkerMessage('{"type":"welcome"}'))).toBe('OMNI_PROTOCOL');
    expect(codeOf(() => parseOrchestratorMessage('{"type":"hello"}'))).toBe('OMNI_PROTOCOL');
    expect(
      codeOf(() => parseWorkerMessage('{"type":"hello","v":1,"token":"t","stage_id":"0","replica_id":0,"pid":1}')),
    ).toBe('OMNI_PROTOCOL');
    expect(codeOf(() => parseWorkerMessage('{"type":"output","request_id":"r","seq":0,"done":true}'))).toBe(
      'OMNI_PROTOCOL',
    );
    expect(codeOf(() => parseWorkerMessage('{"type":"log","level":"loud","message":"x"}'))).toBe('OMNI_PROTOCOL');
    expect(codeOf(() => parseOrchestratorMessage('{"type":"request","request_id":"r","input":1}'))).toBe(
      'OMNI_PROTOCOL',
    );
    const welcome = { type: 'welcome', v: 1, run_id: 'r', stage_id: 0, replica_id: 0, engine_args: {}, metadata: {} };
    expect(codeOf(() => parseOrchestratorMessage(JSON.stringify({ ...welcome, connectors: ['file:///c.js'] })))).toBe(
      'OMNI_PROTOCOL',
    );
    expect(codeOf(() => parseOrchestratorMessage(JSON.stringify({ ...welcome, connectors: { C: 1 } })))).toBe(
      'OMNI_PROTOCOL',
    );
  });
});
