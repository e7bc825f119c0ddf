/**
 * A plugin's bug reaches an HTTP client as the plugin's fault: `omnistage serve` with a real
 * third-party plugin (loaded with --plugin from a .mjs file) whose transport throws a TypeError on
 * every request. The answer is the catalogue's status for OMNI_PLUGIN_FAILED with that code,
 * naming the plugin, the hook and the replica — it was 500 OMNI_INTERNAL, "a bug in omnistage".
 */
import { join } from 'node:path';
import { ERROR_CATALOGUE } from '@omnistage/core';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_FIXTURES, createSandbox, readEvents, requireBuiltCli, runCleanups } from './helpers.js';
import { postJson, startServe } from './serve-helpers.js';

const FIXTURE = join(TEST_FIXTURES, 'faulty-transport-plugin');

afterEach(runCleanups, 60_000);

describe('omnistage serve: a plugin failure', { timeout: 90_000 }, () => {
  it('answers with OMNI_PLUGIN_FAILED and its status, naming plugin, hook and replica; the server keeps serving', async () => {
    requireBuiltCli();
    const box = await createSandbox();
    const events = box.eventsFile('plugin-failure');
    const served = await startServe(box, join(FIXTURE, 'pipeline.yaml'), [
      '--plugin',
      join(FIXTURE, 'plugin.mjs'),
      '--events',
      events,
    ]);
    try {
      for (let i = 0; i < 2; i++) {
        const res = await postJson(`${served.url}/v1/chat/completions`, {
          messages: [{ role: 'user', content: 'hi' }],
        });
        const body = (await res.json()) as { error: { code: string; message: string; type: string } };
        expect(res.status, JSON.stringify(body)).toBe(ERROR_CATALOGUE.OMNI_PLUGIN_FAILED.httpStatus);
        expect(body.error.code).toBe('OMNI_PLUGIN_FAILED');
        expect(body.error.type).toBe('server_error');
        expect(body.error.message).toMatch(
          /^plugin "faulty-transport" failed in a request of the connection its attach tap returned \(stage 0 replica 0\): TypeError: /,
        );
        expect(body.error.message).not.toContain('bug in omnistage');
      }
      expect((await fetch(`${served.url}/health/ready`)).status).toBe(200);
    } finally {
      served.cli.signal('SIGTERM');
      await served.cli.waitExit(30_000);
    }
    expect(readEvents(events).filter((e) => e.type === 'pipeline:failed')).toEqual([]);
    expect(box.runDirLeftovers()).toEqual([]);
  });
});
