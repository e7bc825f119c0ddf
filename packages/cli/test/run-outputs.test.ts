/**
 * `omnistage run` writes every media output a final stage produces, not only its last chunk:
 * a diffusion stage with num_outputs_per_prompt: 2 gives two PNGs per prompt.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, requireBuiltCli, runCleanups, runCli } from './helpers.js';

beforeAll(() => requireBuiltCli());
afterEach(() => runCleanups());

describe('run writes every media output', { timeout: 60_000 }, () => {
  it('saves both images of num_outputs_per_prompt: 2, and they differ', async () => {
    const sb = await createSandbox();
    const file = join(sb.root, 'two-images.yaml');
    writeFileSync(
      file,
      [
        'stage_args:',
        '  - stage_id: 0',
        '    stage_type: diffusion',
        '    runtime: { devices: "0" }',
        '    final_output: true',
        '    final_output_type: image',
        '    default_sampling_params: { height: 64, width: 64, num_inference_steps: 3, seed: 5, num_outputs_per_prompt: 2 }',
        '',
      ].join('\n'),
    );
    const out = join(sb.root, 'out');
    const r = await runCli(
      ['run', file, '--platform', 'cpu', '--lock-dir', sb.lockDir, '--input', 'two foxes', '--out', out, '--json'],
      { tmpDir: sb.tmp },
    );
    expect(r.code, r.stderr).toBe(0);
    const records = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; path: string });
    expect(records.map((x) => x.type)).toEqual(['image', 'image']);
    expect(readdirSync(out).sort()).toEqual(['r1-stage0-1.png', 'r1-stage0.png']);
    expect(readFileSync(join(out, 'r1-stage0.png')).equals(readFileSync(join(out, 'r1-stage0-1.png')))).toBe(false);
    expect(sb.lockDirLeftovers()).toEqual([]);
    expect(sb.runDirLeftovers()).toEqual([]);
  });
});
