/**
 * `omnistage plan --json` is a contract other tools read: on every upstream stage config (with its
 * default engine and with `--engine reference`) and every upstream deploy file, the real CLI's
 * output is byte-identical to the golden file committed beside this test (`golden/plan/`).
 *
 * The inputs are the verbatim upstream copies the repository ships (not `shared/fixtures`, which may
 * be absent), and what depends on the machine is pinned or named: the visible devices
 * (`OMNISTAGE_VISIBLE_DEVICES`), the repository path (`<repo>`) and the node binary (`<node>`); a
 * printed plan's run id is already the fixed `plan-only`.
 *
 * A change of the plan's JSON is a change of the contract: regenerate the files on purpose with
 * `OMNISTAGE_UPDATE_GOLDEN=1 npx vitest run test/plan-golden.test.ts` and review the diff.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  createSandbox,
  requireBuiltCli,
  runCleanups,
  runCli,
  upstreamSelection,
  type Sandbox,
} from './helpers.js';

const GOLDEN_DIR = join(REPO_ROOT, 'packages', 'cli', 'test', 'golden', 'plan');
const STAGE_CONFIGS = join(REPO_ROOT, 'examples', 'upstream-dry-run', 'configs');
const SHIPPED = join(REPO_ROOT, 'packages', 'plugin-upstream-pipelines', 'fixtures');
const DEPLOY_DIR = join(SHIPPED, 'upstream-deploy');
const UPDATE = process.env['OMNISTAGE_UPDATE_GOLDEN'] === '1';

const yamlFiles = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();

interface DeployRow {
  file: string;
  pipeline: string | null;
  pipeline_key_in_yaml: string | null;
}
const ROWS = JSON.parse(readFileSync(join(SHIPPED, 'upstream-pipelines', 'deploy-yamls.json'), 'utf8')) as DeployRow[];

/**
 * A deploy file without `pipeline:` is given its pipeline with `--pipeline` (upstream's
 * deploy-yamls.json; `moss_voice_generator.yaml` is left to the checkpoint, MossTTSDelayModel).
 */
function deploySelection(name: string): string[] {
  const row = ROWS.find((r) => r.file.split('@')[0]?.endsWith(`/${name}`));
  if (!row) throw new Error(`${name} is not in deploy-yamls.json`);
  return row.pipeline_key_in_yaml === null ? ['--pipeline', row.pipeline ?? 'moss_tts_delay'] : [];
}

interface GoldenCase {
  golden: string;
  args: string[];
}

const CASES: GoldenCase[] = [
  ...yamlFiles(STAGE_CONFIGS).flatMap((name) => [
    { golden: `stage-configs/${name}.json`, args: [join(STAGE_CONFIGS, name), ...upstreamSelection(name)] },
    {
      golden: `stage-configs/${name}.reference.json`,
      args: [join(STAGE_CONFIGS, name), ...upstreamSelection(name), '--engine', 'reference'],
    },
  ]),
  ...yamlFiles(DEPLOY_DIR).map((name) => ({
    golden: `deploy/${name}.json`,
    args: [join(DEPLOY_DIR, name), ...deploySelection(name)],
  })),
];

/** The output with what depends on this machine named instead of spelt out. */
function normalize(out: string): string {
  return out.split(process.execPath).join('<node>').split(REPO_ROOT).join('<repo>');
}

let box: Sandbox;
beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
});
afterAll(runCleanups);

describe.concurrent('plan --json golden files', { timeout: 120_000 }, () => {
  it('covers the 6 upstream stage configs and the 41 upstream deploy files', () => {
    expect(CASES.length).toBe(6 * 2 + 41);
    if (UPDATE) return;
    // No golden file is left over from a fixture that is gone.
    const files = ['stage-configs', 'deploy'].flatMap((d) => readdirSync(join(GOLDEN_DIR, d)).map((f) => `${d}/${f}`));
    expect(files.sort()).toEqual(CASES.map((c) => c.golden).sort());
  });

  it.each(CASES)('$golden', async ({ golden, args }) => {
    const r = await runCli(['plan', ...args, '--platform', 'cpu', '--json'], {
      tmpDir: box.tmp,
      env: { OMNISTAGE_VISIBLE_DEVICES: '0,1,2,3,4,5,6,7' },
      timeoutMs: 90_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const got = normalize(r.stdout);
    const path = join(GOLDEN_DIR, golden);
    if (UPDATE) {
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, got);
      return;
    }
    expect(existsSync(path), `${path} is missing: run with OMNISTAGE_UPDATE_GOLDEN=1 to write it`).toBe(true);
    // Byte for byte: a reordered key or a changed number format is a change of the contract.
    expect(got).toBe(readFileSync(path, 'utf8'));
  });
});
