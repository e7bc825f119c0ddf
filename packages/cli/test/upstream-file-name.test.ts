/**
 * The README says any vLLM-Omni YAML dry-runs as it is (`omnistage up FILE --engine reference
 * --platform cpu`). A deploy file carries no topology, and upstream leaves the choice to the model
 * it is served with; with no model, its name chooses, as upstream names them: `<key>.yaml`,
 * `<key>_<variant>.yaml`, or the pipeline's `default_deploy_config`. This checks every upstream
 * deploy file and every config of the dry-run example the way the CLI loads them (built-in
 * plugins, loader, planner), with nothing but the file: the pipeline it gets is the one upstream
 * serves it with (deploy-yamls.json), and the rule is named in a located, coded notice.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Omnistage, isOmniError, loadPipelineConfig, planPipeline, planToJson } from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';
import { upstreamPipelinesPlugin } from '@omnistage/plugin-upstream-pipelines';
import { REPO_ROOT } from './helpers.js';

const SHARED = join(REPO_ROOT, '..', 'shared', 'fixtures');
const FIXTURES = existsSync(join(SHARED, 'upstream-deploy'))
  ? SHARED
  : join(REPO_ROOT, 'packages', 'plugin-upstream-pipelines', 'fixtures');
const DEPLOY_DIR = join(FIXTURES, 'upstream-deploy');
const EXAMPLE_DIR = join(REPO_ROOT, 'examples', 'upstream-dry-run', 'configs');
const yamlIn = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();

interface DeployRow {
  file: string;
  pipeline: string | null;
  pipeline_key_in_yaml: string | null;
}
const ROWS = JSON.parse(readFileSync(join(FIXTURES, 'upstream-pipelines', 'deploy-yamls.json'), 'utf8')) as DeployRow[];
const rowOf = (name: string): DeployRow | undefined => ROWS.find((r) => r.file.split('@')[0]?.endsWith(`/${name}`));

/** Plans `file` with the CLI's plugins and nothing else: no --model, no --pipeline. */
async function planAlone(file: string) {
  const omni = new Omnistage({
    plugins: [llmPlugin(), diffusionPlugin(), kvConnectorPlugin(), upstreamPipelinesPlugin()],
  });
  const config = await loadPipelineConfig(file, { platform: 'cpu', pipelines: () => omni.pipelines });
  const plan = planToJson(await planPipeline(omni, config, { platform: 'cpu', engine: 'reference' }));
  return plan as unknown as {
    topology: { source: string; pipeline: string | null; selected_by: string | null };
    warnings: { code: string; message: string; file?: string; line?: number }[];
  };
}

describe('a deploy file dry-runs as it is: its name selects its pipeline where nothing else does', () => {
  const files = yamlIn(DEPLOY_DIR);
  it('sees the upstream deploy files', () => expect(files.length).toBeGreaterThanOrEqual(41));

  it.each(files)('%s', async (name) => {
    const row = rowOf(name);
    expect(row, `${name} is not in deploy-yamls.json`).toBeDefined();
    const file = join(DEPLOY_DIR, name);
    if (row!.pipeline === null) {
      // Upstream leaves it to the checkpoint, and its name matches no pipeline: a located error.
      const err = await planAlone(file).catch((e: unknown) => e);
      expect(isOmniError(err) && err.code).toBe('OMNI_CONFIG_PIPELINE_UNRESOLVED');
      return;
    }
    const plan = await planAlone(file);
    expect(plan.topology.pipeline).toBe(row!.pipeline);
    const notices = plan.warnings.filter((w) => w.code === 'OMNI_WARN_PIPELINE_FROM_FILE_NAME');
    if (row!.pipeline_key_in_yaml !== null) {
      expect(plan.topology.selected_by).toBe('pipeline key');
      expect(notices).toEqual([]);
    } else {
      expect(plan.topology.selected_by).toBe('file name');
      expect(notices).toHaveLength(1);
      expect(notices[0]!.message).toContain(`selects pipeline \`${row!.pipeline}\``);
      expect(notices[0]!.file).toBe(file);
    }
  });

  it.each(yamlIn(EXAMPLE_DIR))('examples/upstream-dry-run/configs/%s plans with nothing but the file', async (name) => {
    const plan = await planAlone(join(EXAMPLE_DIR, name));
    expect(plan.topology.source === 'file' || plan.topology.pipeline !== null).toBe(true);
  });

  it('a file that spells out its own topology keeps it, whatever its name', async () => {
    const plan = await planAlone(join(EXAMPLE_DIR, 'qwen2_5_omni_multiconnector.yaml'));
    expect(plan.topology.selected_by).toBeNull();
    expect(plan.warnings.map((w) => w.code)).not.toContain('OMNI_WARN_PIPELINE_FROM_FILE_NAME');
  });
});
