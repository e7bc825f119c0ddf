import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { createPayloadConnectorInstance } from '../../src/connectors/payload-connector.js';
import { Omnistage } from '../../src/omnistage.js';
import { bringUp } from '../../src/pipeline/bring-up.js';
import { planToTable } from '../../src/orchestrate/plan-json.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import { newRunId } from '../../src/orchestrate/run-id.js';
import type { RunningPipeline } from '../../src/orchestrate/running-pipeline.js';
import type { OmnistagePlugin } from '../../src/plugin.js';
import { requireBuilt, waitFor } from '../runtime/helpers.js';
import { checksum, pattern, payloadFixturePlugin, watchWhile } from './payload-fixture.js';
import { createRouter } from '../../src/orchestrate/router.js';

const CONNECTOR_MODULE = new URL('./fixtures/dir-connector.mjs', import.meta.url);

/** The payload fixture engine; with `withConnector`, also the DirConnector class. */
const fixturePlugin = (withConnector: boolean): OmnistagePlugin =>
  payloadFixturePlugin((omni) => {
    if (withConnector)
      omni.defineConnector({
        name: 'DirConnector',
        module: CONNECTOR_MODULE,
        description: 'files in a directory (test fixture)',
      });
  });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A producer (stage 0, also a final output) → consumer (stage 1) pipeline whose producer sends over `connector`. */
async function pipelineFile(connector: Record<string, unknown>): Promise<string> {
  const dir = await tempDir('omni-plugin-conn-yaml-');
  const file = join(dir, 'pipeline.yaml');
  await writeFile(
    file,
    [
      'stage_args:',
      '  - stage_id: 0',
      '    stage_type: payload',
      '    runtime: { devices: "0" }',
      `    engine_args: { omni_kv_config: { connector_config: ${JSON.stringify({ role: 'sender', ...connector })} } }`,
      '    final_output: true',
      '  - stage_id: 1',
      '    stage_type: payload',
      '    runtime: { devices: "1" }',
      '    engine_args: { hold_ms: 300 }',
      '    engine_input_source: [0]',
      '    final_output: true',
      '',
    ].join('\n'),
  );
  return file;
}

async function up(file: string, withConnector = true): Promise<RunningPipeline> {
  const lockDir = await tempDir('omni-plugin-conn-locks-');
  const omni = new Omnistage({ plugins: [fixturePlugin(withConnector)], lockDir });
  const config = await loadPipelineConfig(file, { platform: 'cpu' });
  const runId = newRunId();
  const plan = await planPipeline(omni, config, {
    platform: 'cpu',
    purpose: 'launch',
    runId,
    env: { PATH: process.env.PATH },
  });
  const pipeline = await bringUp(omni, plan, { stopGraceMs: 2000 });
  cleanups.push(() => pipeline.stop('test done'));
  return pipeline;
}

const calls = (dir: string): string[] =>
  existsSync(join(dir, 'calls.log')) ? readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n') : [];
const payloadFiles = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith('.bin'));

beforeAll(() =>
  requireBuilt(
    'worker/index.ts',
    'worker/connection.ts',
    'connectors/payload-connector.ts',
    'connectors/payload-ref.ts',
  ),
);

describe('payload connector classes from plugins', () => {
  it('puts in the producer, gets in the consumer, releases after the ack and sweeps at teardown, all through the plugin', async () => {
    const store = await tempDir('omni-plugin-conn-store-');
    const pipeline = await up(await pipelineFile({ type: 'DirConnector', dir: store }));
    expect(pipeline.payloads.connectorModules).toEqual({ DirConnector: CONNECTOR_MODULE.href });

    const { result: outputs, seen } = await watchWhile(
      () => payloadFiles(store),
      () => createRouter(pipeline).complete({ size: 100_000, seed: 3 }),
    );

    const consumer = outputs.find((o) => o.stage_id === 1)!.data as {
      sum: number;
      size: number;
      via: string;
      key: string;
    };
    expect(consumer).toMatchObject({ size: 100_000, via: 'DirConnector', sum: checksum(pattern(100_000, 3)) });
    const key = consumer.key;
    expect(key).toMatch(/^s0r0_/);
    // The producer's output reaches the caller with its bytes inline, read back through the class.
    const producer = outputs.find((o) => o.stage_id === 0)!.data as {
      tensor: { via: string; data_base64: string; key: string };
    };
    expect(producer.tensor).toMatchObject({ via: 'inline', key });
    expect(Buffer.from(producer.tensor.data_base64, 'base64').equals(pattern(100_000, 3))).toBe(true);

    expect([...seen]).toEqual([`${pipeline.runId}-${key}.bin`]); // stored while in flight...
    expect(await waitFor(() => calls(store).includes(`orchestrator - release ${key}`), 3_000)).toBe(true);
    expect(payloadFiles(store)).toEqual([]); // ...and released once both holders (stage 1, the user) were done
    expect(calls(store)).toEqual(
      expect.arrayContaining([`worker 0 put ${key}`, `worker 1 get ${key}`, `orchestrator - get ${key}`]),
    );

    // A payload the class stored but nobody announced is the sweep's job.
    writeFileSync(join(store, `${pipeline.runId}-stray.bin`), 'never announced');
    await pipeline.stop('test');
    expect(payloadFiles(store)).toEqual([]);
    // (A replica's close is best effort: teardown may stop it with a signal first.)
    expect(calls(store)).toEqual(expect.arrayContaining(['orchestrator - sweep 1', 'orchestrator - close']));
  });

  it("fails the request with the class's name when its module breaks the contract or throws", async () => {
    const store = await tempDir('omni-plugin-conn-store-');
    const pipeline = await up(await pipelineFile({ type: 'DirConnector', dir: store, bad_ref: true }));
    await expect(createRouter(pipeline).complete({ size: 5_000, seed: 1 })).rejects.toThrow(
      /connector "DirConnector" returned .* not a reference/,
    );
    const failing = await up(await pipelineFile({ type: 'DirConnector', dir: store, fail_put: true }));
    await expect(createRouter(failing).complete({ size: 5_000, seed: 1 })).rejects.toThrow(
      /connector "DirConnector" could not store a 5000-byte payload: disk full \(fail_put\)/,
    );
  });

  it('warns at plan time when a protocol engine sends over a class nothing implements, not once a plugin defines it', async () => {
    const store = await tempDir('omni-plugin-conn-store-');
    const plan = async (type: string, withConnector: boolean) => {
      const omni = new Omnistage({ plugins: [fixturePlugin(withConnector)], lockDir: store });
      const config = await loadPipelineConfig(await pipelineFile({ type, dir: store }), { platform: 'cpu' });
      return planPipeline(omni, config, { platform: 'cpu', purpose: 'plan' });
    };
    const mooncake = (await plan('MooncakeStoreConnector', true)).warnings.filter(
      (w) => w.code === 'OMNI_WARN_CONNECTOR_UNIMPLEMENTED',
    );
    expect(mooncake).toHaveLength(1);
    expect(mooncake[0]).toMatchObject({
      message: expect.stringContaining('stage 0 sends over connector "MooncakeStoreConnector"'),
      line: expect.any(Number),
    });
    expect(mooncake[0]!.hint).toContain('omni.defineConnector');
    const undefinedDir = await plan('DirConnector', false);
    expect(undefinedDir.warnings.map((w) => w.code)).toContain('OMNI_WARN_CONNECTOR_UNIMPLEMENTED');
    const defined = await plan('DirConnector', true);
    expect(defined.warnings.map((w) => w.code)).not.toContain('OMNI_WARN_CONNECTOR_UNIMPLEMENTED');
    const shm = await plan('SharedMemoryConnector', false);
    expect(shm.warnings.map((w) => w.code)).not.toContain('OMNI_WARN_CONNECTOR_UNIMPLEMENTED');
    // The plan also says how the edge carries data, by the rules the worker SDK applies.
    expect((await plan('MooncakeStoreConnector', true)).transfers).toEqual([
      { from: 0, to: 1, connector: 'MooncakeStoreConnector', carried_by: 'inline' },
    ]);
    expect(defined.transfers).toEqual([{ from: 0, to: 1, connector: 'DirConnector', carried_by: 'plugin' }]);
    expect(undefinedDir.transfers).toEqual([{ from: 0, to: 1, connector: 'DirConnector', carried_by: 'inline' }]);
    expect(shm.transfers).toEqual([
      { from: 0, to: 1, connector: 'SharedMemoryConnector', carried_by: 'shm', threshold_bytes: 65536 },
    ]);
    expect(planToTable(shm).split('\n').slice(-3)).toEqual([
      'transfer  connector              streams  carried by',
      '--------  ---------------------  -------  ---------------------------------------------',
      '0 -> 1    SharedMemoryConnector  no       shared memory above 65536 bytes, inline below',
    ]);
    expect(planToTable(defined)).toMatch(/0 -> 1 +DirConnector +no +the plugin's connector class$/);
  });

  it('refuses definitions that would shadow a built-in class, repeat one, or name no loadable module', () => {
    const omni = new Omnistage();
    const define =
      (name: string, module: string | URL = CONNECTOR_MODULE) =>
      () =>
        omni.defineConnector({ name, module });
    expect(define('SharedMemoryConnector')).toThrow(/core implements this class itself/);
    expect(define('shm')).toThrow(/not a valid class name/);
    expect(define('has space')).toThrow(/not a valid class name/);
    expect(define('Relative', './dir-connector.mjs')).toThrow(/neither an absolute path nor a file: URL/);
    expect(define('Remote', new URL('https://example.com/c.js'))).toThrow(/not a file: URL/);
    define('DirConnector')();
    expect(define('DirConnector')).toThrow(/defined twice/);
    expect(omni.connectorNames()).toEqual(['DirConnector']);
    expect(define('DirConnector')).toThrow(expect.objectContaining({ name: 'OmniError', code: 'OMNI_PLUGIN_INVALID' }));
  });

  it('names the class and module when a connector module cannot be used', async () => {
    const dir = await tempDir('omni-plugin-conn-mod-');
    const noExport = join(dir, 'no-export.mjs');
    await writeFile(noExport, 'export const nothing = 1;\n');
    const ctx = { name: 'X', role: 'worker' as const, runId: 'r', config: {} };
    await expect(createPayloadConnectorInstance(pathToFileURL(noExport).href, ctx)).rejects.toThrow(
      /connector "X" .* does not export a createPayloadConnector function/,
    );
    await expect(createPayloadConnectorInstance(pathToFileURL(join(dir, 'missing.mjs')).href, ctx)).rejects.toThrow(
      /cannot be loaded/,
    );
    await expect(
      createPayloadConnectorInstance(CONNECTOR_MODULE.href, { ...ctx, config: { fail_create: true } }),
    ).rejects.toThrow(/failed to start: refusing to start/);
    const empty = join(dir, 'empty.mjs');
    await writeFile(empty, 'export const createPayloadConnector = () => ({ put() {} });\n');
    await expect(createPayloadConnectorInstance(pathToFileURL(empty).href, ctx)).rejects.toThrow(
      /returned no connector/,
    );
  });
});
