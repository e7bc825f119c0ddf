/**
 * The `python` engine end to end through core's API (the CLI runs of the same pipeline are in
 * packages/cli/test/run-python.test.ts): real Python replicas on the worker SDK, a real Node
 * reference stage between them, real shared-memory files, and the plan-time checks of the entry.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createRouter,
  Omnistage,
  bringUp,
  definePlugin,
  loadPipelineConfig,
  newRunId,
  planPipeline,
  type OmniError,
  type PipelineOutput,
  type RunningPipeline,
} from '@omnistage/core';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';
import { PYTHON_ENV } from '../src/python-entry.js';
import { pythonPlugin } from '../src/python-plugin.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const ROUNDTRIP = join(FIXTURES, 'python-roundtrip.yaml');

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'omnistage-python-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function omnistage(lockDir: string, extra: ReturnType<typeof definePlugin>[] = []): Omnistage {
  return new Omnistage({ lockDir, plugins: [llmPlugin(), kvConnectorPlugin(), pythonPlugin(), ...extra] });
}

async function planError(file: string, env: Record<string, string | undefined> = process.env): Promise<OmniError> {
  const dir = await scratch();
  const config = await loadPipelineConfig(file, { platform: 'cpu' });
  const err = await planPipeline(omnistage(dir), config, { platform: 'cpu', env }).then(
    () => null,
    (e: unknown) => e as OmniError,
  );
  if (err === null) throw new Error(`planning ${file} did not fail`);
  return err;
}

/** A one-stage pipeline file next to a copy of nothing: `entry`/`python` lines as given. */
async function pipelineFile(engineArgs: string, stageType = 'llm'): Promise<string> {
  const file = join(await scratch(), 'pipeline.yaml');
  await writeFile(
    file,
    [
      'stage_args:',
      '  - stage_id: 0',
      `    stage_type: ${stageType}`,
      '    engine: python',
      '    runtime: { devices: "0" }',
      `    engine_args: ${engineArgs}`,
      '    final_output: true',
      '',
    ].join('\n'),
  );
  return file;
}

describe('python engine through the API', { timeout: 60_000 }, () => {
  it('streams chunks, moves >64 KiB tensors Python → Node → Python through shm, and an abort stops the Python generator', async () => {
    const dir = await scratch();
    const config = await loadPipelineConfig(ROUNDTRIP, { platform: 'cpu' });
    config.stages[0]!.engine_args['marker_dir'] = dir;
    config.stages[0]!.engine_args['repeat'] = 2;
    config.stages[0]!.engine_args['word_delay_s'] = 0.05;
    const omni = omnistage(join(dir, 'locks'));
    const runId = newRunId();
    const plan = await planPipeline(omni, config, { platform: 'cpu', runId, purpose: 'launch' });
    const python = plan.stages[0]!.replicas[0]!.worker;
    expect(python.command).toBe('python3');
    expect(python.args).toEqual(['-m', 'omnistage_worker', `${join(FIXTURES, 'tensor_engine.py')}:TensorEngine`]);
    expect(python.env['PYTHONPATH']?.split(':')[0]).toMatch(/packages\/worker-python\/src$/);
    const pipeline: RunningPipeline = await bringUp(omni, plan, { stopGraceMs: 2000 });
    cleanups.push(() => pipeline.stop('test over'));
    const stored: { key: string; via: string; size: number; stage_id: number | null }[] = [];
    omni.events.on('payload:stored', (e) =>
      stored.push({ key: e.key, via: e.via, size: e.size, stage_id: e.stage_id }),
    );

    const outs: PipelineOutput[] = [];
    for await (const out of createRouter(pipeline).generate('the quick brown fox', { requestId: 'rt' })) outs.push(out);
    const words = outs
      .filter((o) => o.stage_id === 0 && o.kind === 'chunk')
      .map((o) => (o.data as { text: string }).text);
    expect(words).toEqual(['the', 'quick', 'brown', 'fox', 'the', 'quick', 'brown', 'fox']);
    const last = outs.filter((o) => o.kind === 'final');
    expect(last.map((o) => o.stage_id).sort()).toEqual([0, 2]);
    // The reference stage's 16 × 1536 float32 latent, read by the second Python stage by key.
    expect(last.find((o) => o.stage_id === 2)!.data).toMatchObject({ text: '24576 floats via shm', shape: [16, 1536] });
    expect(stored).toEqual([
      expect.objectContaining({ via: 'shm', size: 288 * 64 * 4, stage_id: 0 }),
      expect.objectContaining({ via: 'shm', size: 16 * 1536 * 4, stage_id: 1 }),
    ]);

    // Abort mid-stream: the generator is closed in the Python replica (it leaves a marker).
    const abort = new AbortController();
    const seen: string[] = [];
    const run = (async () => {
      for await (const out of createRouter(pipeline).generate('one two three four five six seven eight nine ten', {
        requestId: 'ab',
        signal: abort.signal,
        params: {},
      })) {
        seen.push((out.data as { text: string }).text);
        if (seen.length === 3) abort.abort(new Error('enough'));
      }
    })();
    await expect(run).rejects.toThrow();
    const marker = join(dir, 'aborted-ab:0'); // the replica's request id is <request>:<stage>
    await expect.poll(() => existsSync(marker), { timeout: 10_000 }).toBe(true);
    expect(seen.length).toBeLessThan(20);
    // The pipeline still serves.
    const again: PipelineOutput[] = [];
    for await (const out of createRouter(pipeline).generate('again', { requestId: 'ag' })) again.push(out);
    expect(again.find((o) => o.stage_id === 2 && o.kind === 'final')).toBeDefined();
  });

  it('serves stage types defined by another plugin, before or after it', async () => {
    const lateType = definePlugin({
      name: 'late-type',
      apply(omni) {
        omni.defineStageType({ name: 'speech', defaultEngine: 'python', devicesPerReplica: () => 1 });
      },
    });
    const omni = omnistage(await scratch(), [lateType]);
    expect(omni.definitions.engineNames('speech')).toContain('python');
    expect(omni.definitions.engineNames('llm')).toEqual(['python', 'reference', 'vllm']);
    const file = await pipelineFile(`{ entry: ${join(FIXTURES, 'tensor_engine.py')}:TensorEngine }`, 'speech');
    const plan = await planPipeline(omni, await loadPipelineConfig(file, { platform: 'cpu' }), { platform: 'cpu' });
    expect(plan.stages[0]!.replicas[0]!.worker.args[1]).toBe('omnistage_worker');
  });
});

describe('python engine: the entry and the interpreter are checked before anything starts', () => {
  it('a missing entry, a missing file, a missing class and a syntax error are located config errors', async () => {
    const noEntry = await planError(await pipelineFile('{ rows: 1 }'));
    expect(noEntry.code).toBe('OMNI_CONFIG_INVALID');
    expect(noEntry.message).toMatch(/has no engine_args.entry/);
    expect(noEntry.location?.line).toBe(6);

    const noFile = await planError(await pipelineFile('{ entry: ./nope.py }'));
    expect(noFile.code).toBe('OMNI_CONFIG_INVALID');
    expect(noFile.message).toMatch(/engine file .*\/nope\.py does not exist/);
    expect(noFile.location).toMatchObject({ line: 6 });
    expect(noFile.hint).toMatch(/relative to the pipeline file/);

    const noClass = await planError(await pipelineFile(`{ entry: "${join(FIXTURES, 'tensor_engine.py')}:Nope" }`));
    expect(noClass.message).toMatch(/has no class Nope \(classes: TensorEngine\)/);

    const noHandle = await planError(await pipelineFile(`{ entry: "${join(FIXTURES, 'tensor_engine.py')}" }`));
    expect(noHandle.message).toMatch(/defines no handle\(request, stream\) function/);

    const dir = dirname(await pipelineFile('{}'));
    await writeFile(join(dir, 'broken.py'), 'class X:\n    def handle(self, request, stream)\n        pass\n');
    await writeFile(join(dir, 'pipeline.yaml'), readFileSync(await pipelineFile('{ entry: ./broken.py:X }'), 'utf8'));
    const syntax = await planError(join(dir, 'pipeline.yaml'));
    expect(syntax.message).toMatch(/broken\.py:2: /);
  });

  it('a missing interpreter names where it came from and how to install one', async () => {
    const entry = `${join(FIXTURES, 'tensor_engine.py')}:TensorEngine`;
    const fromYaml = await planError(await pipelineFile(`{ entry: "${entry}", python: /nonexistent/bin/python3 }`));
    expect(fromYaml.code).toBe('OMNI_CONFIG_INVALID');
    expect(fromYaml.message).toMatch(
      /the Python interpreter "\/nonexistent\/bin\/python3" \(engine_args.python\) was not found/,
    );
    expect(fromYaml.hint).toMatch(/apt-get install python3/);
    expect(fromYaml.location?.line).toBe(6);

    const fromEnv = await planError(await pipelineFile(`{ entry: "${entry}" }`), {
      ...process.env,
      [PYTHON_ENV]: 'no-such-python-here',
    });
    expect(fromEnv.message).toMatch(/"no-such-python-here" \(\$OMNISTAGE_PYTHON\) was not found/);

    const noPath = await planError(await pipelineFile(`{ entry: "${entry}" }`), { PATH: '/nonexistent' });
    expect(noPath.message).toMatch(/"python3" \(the default\) was not found/);
  });
});
