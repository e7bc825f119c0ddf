import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOmniError } from '../../src/errors.js';
import type { OmniEvent } from '../../src/events/types.js';
import type { PipelineOutput } from '../../src/orchestrate/router.js';
import { bringUpFixture, releaseAll, waitFor, type UpPipeline } from './router-helpers.js';

type Data = Record<string, unknown>;
const isAudio = (o: PipelineOutput): boolean => o.stage_id === 2 && (o.data as Data)['kind'] === 'audio_chunk';
const pcmOf = (outs: PipelineOutput[]): Buffer =>
  Buffer.concat(outs.filter(isAudio).map((o) => Buffer.from((o.data as Data)['data_base64'] as string, 'base64')));
const ofRequest = (events: OmniEvent[], id: string) => events.filter((e) => 'request_id' in e && e.request_id === id);

describe('failures and cancellation mid-stream (async_chunk, two talker replicas)', () => {
  let up: UpPipeline;
  beforeAll(async () => {
    up = await bringUpFixture('streaming-two-talkers.yaml');
  }, 90_000);
  afterAll(() => releaseAll(), 30_000);

  const talkerPid = (replicaId: number): number =>
    up.pipeline.replicas.find((r) => r.plan.stage_id === 1 && r.plan.replica_id === replicaId)!.process.pid;

  /** Kills the talker replica of `requestId` as soon as it is dispatched (before any audio exists). */
  function killTalkerOnDispatch(requestId: string): { killed: () => number | null } {
    let killed: number | null = null;
    const off = up.omni.events.on('request:dispatched', (e) => {
      if (e.request_id !== requestId || e.stage_id !== 1 || killed !== null) return;
      killed = talkerPid(e.replica_id);
      process.kill(killed, 'SIGKILL');
      off();
    });
    return { killed: () => killed };
  }

  it('before any output reached the caller, a talker that dies is replaced and the whole request runs once more', async () => {
    const input = 'a question about the tide';
    const clean: PipelineOutput[] = [];
    for await (const o of up.router.generate(input, { requestId: 'clean' })) clean.push(o);

    const kill = killTalkerOnDispatch('retried');
    const outs: PipelineOutput[] = [];
    for await (const o of up.router.generate(input, { requestId: 'retried' })) outs.push(o);
    expect(kill.killed()).not.toBeNull();
    expect(outs.length).toBeGreaterThan(0);
    expect(
      outs.every((o) => o.attempt === 1),
      'every output is of the second run',
    ).toBe(true);
    expect(
      pcmOf(outs).length,
      JSON.stringify(outs.map((o) => [o.stage_id, o.attempt, (o.data as Data)['kind'], (o.data as Data)['index']])),
    ).toBe(pcmOf(clean).length);
    expect(pcmOf(outs).equals(pcmOf(clean)), 'the same audio, once').toBe(true);
    const dispatched = ofRequest(up.events, 'retried').filter((e) => e.type === 'request:dispatched');
    // The first run never reached code2wav: the talker died before its first window.
    expect(dispatched.map((e) => (e as { stage_id: number }).stage_id).sort()).toEqual([0, 0, 1, 1, 2]);
  }, 60_000);

  it('after audio reached the caller, a talker that dies fails the request naming it; nothing is sent again', async () => {
    const outs: PipelineOutput[] = [];
    let killed: number | null = null;
    let error: unknown = null;
    try {
      for await (const o of up.router.generate('another question', { requestId: 'failed' })) {
        outs.push(o);
        if (isAudio(o) && killed === null) {
          const talker = ofRequest(up.events, 'failed').find(
            (e) => e.type === 'request:dispatched' && e.stage_id === 1,
          ) as { replica_id: number };
          killed = talkerPid(talker.replica_id);
          process.kill(killed, 'SIGKILL');
        }
      }
    } catch (err) {
      error = err;
    }
    expect(killed).not.toBeNull();
    expect(isOmniError(error) && error.code).toBe('OMNI_REQUEST_FAILED');
    const e = error as { message: string; context: Record<string, unknown> };
    expect(e.message).toMatch(new RegExp(`stage 1 replica \\d \\(pid ${killed}\\) died`));
    expect(e.context['stage_id']).toBe(1);
    expect(outs.every((o) => o.attempt === 0)).toBe(true);
    // Every stage of the request ended (none left streaming).
    const ends = ofRequest(up.events, 'failed').filter((ev) => ev.type === 'request:stage_end');
    expect(ends.map((ev) => (ev as { stage_id: number }).stage_id).sort()).toEqual([0, 1, 2]);
  }, 60_000);

  it('a caller that stops reading mid-stream stops every stage, the streaming ones included', async () => {
    // Both talkers were killed above; the restart policy brings them back.
    await waitFor(() => up.pipeline.liveReplicas(1).filter((r) => r.connection !== null).length === 2, 20_000);
    const controller = new AbortController();
    let error: unknown = null;
    try {
      for await (const o of up.router.generate('a long answer please', {
        requestId: 'cancelled',
        signal: controller.signal,
      })) {
        if (isAudio(o)) controller.abort(new Error('the client went away'));
      }
    } catch (err) {
      error = err;
    }
    expect(isOmniError(error) && `${error.code}: ${error.message}`).toMatch(/^OMNI_CANCELLED: /);
    const ends = ofRequest(up.events, 'cancelled').filter((ev) => ev.type === 'request:stage_end') as {
      stage_id: number;
      outcome: string;
    }[];
    expect(ends.map((ev) => ev.stage_id).sort()).toEqual([0, 1, 2]);
    // The thinker (20 tokens) and the talker were still writing when the first audio came.
    expect(ends.filter((ev) => ev.stage_id !== 2).map((ev) => ev.outcome)).toEqual(['aborted', 'aborted']);
    // The replicas serve the next request: nothing of the cancelled one is held.
    const next: PipelineOutput[] = [];
    for await (const o of up.router.generate('after the cancel', { requestId: 'after' })) next.push(o);
    expect(next.some(isAudio)).toBe(true);
  }, 60_000);
});
