/**
 * A payload connector class from a plugin, end to end through the CLI: the pipeline file loads the
 * plugin (`plugins:`), names the class under `runtime.connectors` with its `extra`, and wires the
 * thinker → talker edge to it; the KV plugin turns that into the stages' connector config, the
 * reference engines' worker SDK loads the class's module, and the orchestrator releases and sweeps
 * through it. Without the plugin the same file runs inline and the plan says so.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_FIXTURES,
  createSandbox,
  readEvents,
  requireBuiltCli,
  runCleanups,
  runCli,
  type Sandbox,
} from './helpers.js';
import { expectNothingLeft, explain, jsonRecords, requireFreshBuild } from './run-helpers.js';

const PLUGIN = join(TEST_FIXTURES, 'connector-plugin', 'dir-connector-plugin.mjs');

beforeAll(() => {
  requireBuiltCli();
  requireFreshBuild();
});
afterEach(runCleanups);

/** Writes the pipeline into the sandbox; its DirConnector stores payloads in `<root>/store`. */
async function pipeline(box: Sandbox, withPlugin: boolean): Promise<{ file: string; store: string }> {
  const store = join(box.root, 'store');
  await mkdir(store, { recursive: true });
  const file = join(box.root, 'pipeline.yaml');
  await writeFile(
    file,
    `${withPlugin ? `plugins:\n  - ${JSON.stringify(PLUGIN)}\n` : ''}runtime:
  connectors:
    disk: { name: DirConnector, extra: { dir: ${JSON.stringify(store)} } }
stage_args:
  - stage_id: 0
    stage_type: llm
    engine: reference
    runtime: { devices: "0" }
    engine_args: { model_stage: thinker, engine_output_type: latent }
    final_output: true
    final_output_type: text
    output_connectors: { to_stage_1: disk }
  - stage_id: 1
    stage_type: llm
    engine: reference
    runtime: { devices: "1" }
    engine_args: { model_stage: talker }
    engine_input_source: [0]
    input_connectors: { from_stage_0: disk }
    final_output: true
    final_output_type: text
`,
  );
  return { file, store };
}

const calls = (store: string): string[] =>
  existsSync(join(store, 'calls.log')) ? readFileSync(join(store, 'calls.log'), 'utf8').trim().split('\n') : [];

describe('omnistage run with a payload connector class from a plugin', { timeout: 60_000 }, () => {
  it("moves the thinker's latents through the plugin's class and leaves nothing stored", async () => {
    const box = await createSandbox();
    const { file, store } = await pipeline(box, true);
    const events = box.eventsFile('plugin-connector');
    const r = await runCli(
      [
        'run',
        file,
        '--input',
        'hello',
        '--input',
        'world',
        '--json',
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        events,
      ],
      {
        tmpDir: box.tmp,
        timeoutMs: 45_000,
      },
    );
    expect(r.code, explain(r)).toBe(0);
    expect(r.stderr).not.toContain('OMNI_WARN_CONNECTOR_UNIMPLEMENTED');
    const records = jsonRecords(r.stdout);
    expect(records.map((x) => `${x.request_id}:${x.stage_id}`).sort()).toEqual(['r1:0', 'r1:1', 'r2:0', 'r2:1']);

    const log = calls(store);
    const puts = log.filter((l) => l.startsWith('worker 0 put ')).map((l) => l.split(' ')[3]!);
    expect(puts).toHaveLength(2); // one latent tensor per request, each through the class...
    for (const key of puts) {
      expect(log).toContain(`worker 1 get ${key}`); // ...read by the talker through the same class
      expect(log).toContain(`orchestrator - release ${key}`); // ...and freed once everyone was done
    }
    expect(log).toContain('orchestrator - close');
    expect(readdirSync(store).filter((n) => n.endsWith('.bin'))).toEqual([]);
    await expectNothingLeft(box, readEvents(events, true), -1);

    // The talker conditions on the bytes it received: the same texts as when they travel inline.
    const inline = await createSandbox();
    const plain = await pipeline(inline, false);
    const again = await runCli(
      [
        'run',
        plain.file,
        '--input',
        'hello',
        '--input',
        'world',
        '--json',
        '--platform',
        'cpu',
        '--lock-dir',
        inline.lockDir,
      ],
      {
        tmpDir: inline.tmp,
        timeoutMs: 45_000,
      },
    );
    expect(again.code, explain(again)).toBe(0);
    const text = (rs: typeof records) => Object.fromEntries(rs.map((x) => [`${x.request_id}:${x.stage_id}`, x.text]));
    expect(text(jsonRecords(again.stdout))).toEqual(text(records));
    // Without the plugin nothing implements the class for the reference engine: the plan says so, where.
    expect(again.stderr).toMatch(
      new RegExp(
        `${plain.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: warning OMNI_WARN_CONNECTOR_UNIMPLEMENTED: stage 0 sends over connector "DirConnector"`,
      ),
    );
    expect(calls(plain.store)).toEqual([]);
  });
});
