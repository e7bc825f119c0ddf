/**
 * `omnistage schema`: a draft-07 JSON Schema of pipeline files in which every loaded stage type's
 * engine_args schema appears — first-party, cross-cutting (the KV plugin's omni_kv_config) and a
 * third-party plugin's given with --plugin.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, runCli } from './helpers.js';

beforeAll(() => requireBuiltCli());

describe('omnistage schema', { timeout: 30_000 }, () => {
  it('includes the engine_args of every stage type, the shared KV keys and --plugin stage types', async () => {
    const plain = await runCli(['schema']);
    expect(plain.code, plain.stderr).toBe(0);
    const schema = JSON.parse(plain.stdout) as Record<string, unknown>;
    expect(schema['$schema']).toContain('draft-07');
    const text = plain.stdout;
    expect(text).toContain('engine_args (llm stages)');
    expect(text).toContain('engine_args (diffusion stages)');
    expect(text).toContain('need_send_cache');
    expect(text).not.toContain('engine_args (tts stages)');

    const withPlugin = await runCli([
      'schema',
      '--plugin',
      join(REPO_ROOT, 'examples/custom-stage-type/tts-stage.mjs'),
    ]);
    expect(withPlugin.code, withPlugin.stderr).toBe(0);
    expect(withPlugin.stdout).toContain('engine_args (tts stages)');
    expect(withPlugin.stdout).toContain('voice of the synthesised speech');
  });
});
