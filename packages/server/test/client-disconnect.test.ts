/**
 * A client that leaves mid-request, over a real socket: its request is aborted in the pipeline,
 * logged at info with status 499 (not a warning: nothing failed), and counted 499 in the metrics.
 */
import http from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakePipeline } from './fake-pipeline.js';
import { fakeServer } from './inject-helpers.js';

describe('a client that disconnects', () => {
  it('is a 499 at info in the log and in the metrics; its request is aborted', async () => {
    const lines: { level: number; status?: number; request_id?: string; msg: string }[] = [];
    let logged: () => void = () => {};
    const sawLine = new Promise<void>((resolve) => (logged = resolve));
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        if (lines.some((l) => l.status === 499)) logged();
        done();
      },
    });
    const fake = new FakePipeline();
    fake.hold();
    const server = fakeServer(fake, { logger: pino({ level: 'info' }, sink) });
    const url = new URL(await server.listen('127.0.0.1', 0));
    const req = http.request({
      host: '127.0.0.1',
      port: Number(url.port),
      path: '/v1/chat/completions',
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'leaver-1' },
    });
    req.on('error', () => {});
    req.end(JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }));
    await fake.receivedCount(1);
    req.destroy();
    await sawLine;
    const line = lines.find((l) => l.status === 499)!;
    expect(line).toMatchObject({ level: 30, request_id: 'leaver-1' });
    expect(line.msg).toContain('request leaver-1: the client disconnected');
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    expect(fake.received[0]!.request.signal.aborted).toBe(true);
    const metrics = (await server.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('omnistage_http_requests_total{endpoint="/v1/chat/completions",status="499"} 1');
  });
});
