import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import type { OmniEvent } from '../../src/events/types.js';
import { Omnistage } from '../../src/omnistage.js';
import { bringUp, type BringUpOptions } from '../../src/pipeline/bring-up.js';
import { planPipeline } from '../../src/pipeline/plan-pipeline.js';
import { newRunId } from '../../src/orchestrate/run-id.js';
import { createRouter, type PipelineRouter } from '../../src/orchestrate/router.js';
import type { RunningPipeline } from '../../src/orchestrate/running-pipeline.js';
import type { InitPlan } from '../../src/planning/types.js';
import type { OmnistagePlugin } from '../../src/plugin.js';
import { isAlive, waitFor } from '../runtime/helpers.js';

export { isAlive, waitFor };

export const ROUTER_FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const LLM_DIST = join(ROOT, 'packages/plugin-llm/dist/index.js');
const WORKER_SDK_DIST = join(ROOT, 'packages/core/dist/worker/index.js');

/**
 * The reference LLM engine (packages/plugin-llm), loaded from its build: its worker processes are
 * real and import @omnistage/core/worker from core's dist. Imported by path so core does not
 * depend on the plugin package.
 */
export async function referenceLlmPlugin(): Promise<OmnistagePlugin> {
  for (const p of [LLM_DIST, WORKER_SDK_DIST]) {
    if (!existsSync(p)) throw new Error(`${p} is missing: run \`npx turbo run build\` at the repository root first`);
  }
  const mod = (await import(pathToFileURL(LLM_DIST).href)) as { llmPlugin: () => OmnistagePlugin };
  return mod.llmPlugin();
}

export interface UpPipeline {
  omni: Omnistage;
  plan: InitPlan;
  pipeline: RunningPipeline;
  /** The pipeline's router (default options); a test that needs others creates its own. */
  router: PipelineRouter;
  /** Every event, in emission order. */
  events: OmniEvent[];
  /** Pids of every replica process spawned. */
  pids: number[];
}

/** Pipelines and temp dirs of the current test file, released by {@link releaseAll}. */
const opened: { lockDir: string; up?: UpPipeline }[] = [];

/** Loads a fixture, plans it on virtual cpu devices and brings it up with a fresh temp lock dir. */
export async function bringUpFixture(
  name: string,
  options: { plugins?: OmnistagePlugin[]; bringUp?: BringUpOptions } = {},
): Promise<UpPipeline> {
  const lockDir = await mkdtemp(join(tmpdir(), 'omni-router-test-'));
  const entry: { lockDir: string; up?: UpPipeline } = { lockDir };
  opened.push(entry);
  const omni = new Omnistage({ plugins: options.plugins ?? [await referenceLlmPlugin()], lockDir });
  const events: OmniEvent[] = [];
  const pids: number[] = [];
  omni.events.onAny((e) => {
    events.push(e);
    if (e.type === 'replica:spawned') pids.push(e.pid);
  });
  const config = await loadPipelineConfig(join(ROUTER_FIXTURES, name), { platform: 'cpu' });
  const runId = newRunId();
  const plan = await planPipeline(omni, config, {
    platform: 'cpu',
    purpose: 'launch',
    runId,
    env: { PATH: process.env.PATH },
  });
  const pipeline = await bringUp(omni, plan, { stopGraceMs: 2000, ...options.bringUp });
  entry.up = { omni, plan, pipeline, router: createRouter(pipeline), events, pids };
  return entry.up;
}

/** Stops every pipeline brought up by this file and checks nothing is left (processes, run dirs). */
export async function releaseAll(): Promise<void> {
  const problems: string[] = [];
  for (const entry of opened.splice(0)) {
    if (entry.up) {
      await entry.up.pipeline.stop('test done');
      const alive = entry.up.pids.filter((pid) => pid !== process.pid && isAlive(pid));
      if (alive.length > 0) problems.push(`replica processes still alive after stop: ${alive.join(', ')}`);
      if (existsSync(entry.up.pipeline.runDir)) problems.push(`run dir left behind: ${entry.up.pipeline.runDir}`);
    }
    await rm(entry.lockDir, { recursive: true, force: true });
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

/** The 1-based line of the first line of a fixture that contains `needle`. */
export function fixtureLine(name: string, needle: string): number {
  const lines = readFileSync(join(ROUTER_FIXTURES, name), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`${needle} not found in ${name}`);
  return i + 1;
}

/** Text of a reference LLM output (`{kind: 'final', text, ...}`). */
export function textOf(data: unknown): string {
  const t = (data as { text?: unknown } | null)?.text;
  if (typeof t !== 'string') throw new Error(`expected an output with text, got ${JSON.stringify(data)}`);
  return t;
}
