import { existsSync, readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { isOmniError, type OmniError } from '../../src/errors.js';
import type { ReadFile } from '../../src/config/load.js';
import { PipelineRegistry, type PipelineDefinition } from '../../src/config/pipelines.js';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The upstream fixture directory: `shared/fixtures/upstream-stage-configs` beside the repository
 * when it is there, else the verbatim copies the upstream-dry-run example ships.
 */
export const SHARED_FIXTURES = resolve(here, '../../../../../shared/fixtures/upstream-stage-configs');
export const REPO_FIXTURES = resolve(here, '../../../../examples/upstream-dry-run/configs');
export const UPSTREAM_FIXTURES = existsSync(SHARED_FIXTURES) ? SHARED_FIXTURES : REPO_FIXTURES;

export function upstream(name: string): string {
  return join(UPSTREAM_FIXTURES, name);
}

/** Strips the common indentation of a template literal, so line/col in tests match the text. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const raw = strings.reduce((acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ''), '');
  const lines = raw
    .replace(/^\n/, '')
    .replace(/\n[ \t]*$/, '\n')
    .split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

/** A ReadFile over an in-memory map of absolute paths. */
export function memoryFs(files: Record<string, string>): ReadFile {
  return (path) => {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return text;
  };
}

/** Awaits a rejection and returns it as an OmniError (fails the test otherwise). */
export async function rejection(promise: Promise<unknown>): Promise<OmniError> {
  let caught: unknown;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected the promise to reject').toBeDefined();
  if (!isOmniError(caught)) throw caught instanceof Error ? caught : new Error(String(caught));
  return caught;
}

/** `file:line:col` of an error's location (file as its basename). */
export function where(err: OmniError): string {
  const loc = err.location;
  return loc ? `${loc.file.split('/').pop() ?? ''}:${loc.line}:${loc.col}` : '(none)';
}

/** `basename:line:col` of a SourceLocation-like object. */
export function at(loc: { file: string | null; line: number | null; col: number | null }): string {
  return `${(loc.file ?? '').split('/').pop() ?? ''}:${loc.line}:${loc.col}`;
}

/** Upstream's pipelines, from the data file the upstream-pipelines plugin ships (core itself knows none). */
export function upstreamPipelineDefinitions(): PipelineDefinition[] {
  const file = resolve(here, '../../../plugin-upstream-pipelines/data/pipelines.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { pipelines: PipelineDefinition[] }).pipelines;
}

/** A two-stage llm chain (0 → 1) for synthetic deploy files. */
export const TEST_CHAIN: PipelineDefinition = {
  name: 'test_chain',
  stages: [
    { stage_id: 0, model_stage: 'first', stage_type: 'llm', engine_input_source: [], final_output: false },
    {
      stage_id: 1,
      model_stage: 'second',
      stage_type: 'llm',
      engine_input_source: [0],
      final_output: true,
      final_output_type: 'text',
    },
  ],
};

/** Upstream's pipelines plus {@link TEST_CHAIN}. */
export function testRegistry(): PipelineRegistry {
  return PipelineRegistry.of([...upstreamPipelineDefinitions(), TEST_CHAIN]);
}
