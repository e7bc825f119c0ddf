/**
 * scripts/gpu-check.sh in its dry-run form (--platform cpu), as CI runs it: the same two-stage
 * Python-SDK pipelines, admission and lock checks as on GPUs, with torch and nvidia-smi skipped.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli } from './helpers.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'gpu-check.sh');

beforeAll(requireBuiltCli);

function gpuCheck(args: string[], env: Record<string, string> = {}) {
  return spawnSync('bash', [SCRIPT, ...args], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 180_000 });
}

describe('scripts/gpu-check.sh', { timeout: 200_000 }, () => {
  it('--dry-run passes every check that needs no GPU and says which it skipped', () => {
    const r = gpuCheck(['--dry-run']);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^gpu-check: node v\d+\.\d+\.\d+ .*platform cpu$/m);
    for (const stage of [0, 1]) {
      expect(out).toMatch(new RegExp(`^PASS mapping stage ${stage} replica 0: OMNISTAGE_VISIBLE_DEVICES=${stage}, plan mapped \\['${stage}'\\]$`, 'm'));
      expect(out).toMatch(new RegExp(`^FIGURE bring-up stage ${stage} replica 0: \\d+ ms lock\\+spawn\\+attach`, 'm'));
    }
    expect(out).toMatch(/^PASS admission: .*exit 2, OMNI_PLAN_OVERCOMMIT$/m);
    expect(out).toMatch(/^PASS locks serialise same-GPU init: stage \d init .* then stage \d init /m);
    expect(out).toMatch(/^PASS lock events: acquired s(\d) → released s\1 → acquired s\d → released s\d$/m);
    expect(out.match(/^PASS teardown processes: 2 pids of the run, alive after it: \[\]$/gm)).toHaveLength(2);
    expect(out.match(/^FIGURE matmul pid \d+: 48x48 in [\d.]+ ms = [\d.e+-]+ TFLOP\/s \(pure-Python CPU fallback\)$/gm)).toHaveLength(2);
    expect(out).toMatch(/^SKIP teardown GPUs: --platform cpu: no nvidia-smi$/m);
    expect(out).not.toMatch(/^FAIL /m);
    expect(out).toMatch(/^gpu-check \(cpu\): 11 passed, 0 failed, 4 skipped$/m);
  });

  it('refuses a bad platform and a Node.js that does not run, with exit 2 and what to do', () => {
    const bad = gpuCheck(['--platform', 'tpu']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--platform must be cuda or cpu, got tpu');
    const noNode = gpuCheck(['--dry-run'], { OMNISTAGE_NODE: '/nonexistent/node' });
    expect(noNode.status).toBe(2);
    expect(noNode.stderr).toContain('/nonexistent/node is not Node.js 20 or later');
  });

  it.skipIf(spawnSync('nvidia-smi', ['-L']).status === 0)('--platform cuda without nvidia-smi says so (exit 2) instead of planning', () => {
    const r = gpuCheck(['--platform', 'cuda']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('nvidia-smi not found: --platform cuda needs NVIDIA GPUs and their driver (or use --dry-run)');
  });
});
