/**
 * scripts/gpu-check.sh in its dry-run form (--platform cpu), as CI runs it: the same two-stage
 * Python-SDK pipelines, admission and lock checks as on GPUs, with torch and nvidia-smi skipped.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli } from './helpers.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'gpu-check.sh');
/** A stand-in nvidia-smi and torch (two fake GPUs): the cuda code path, checked strictly, without a GPU. */
const FAKE_CUDA = join(REPO_ROOT, 'packages', 'cli', 'test', 'fixtures', 'fake-cuda');

function withFakeCuda(extra: Record<string, string> = {}) {
  const registry = mkdtempSync(join(tmpdir(), 'fake-gpus-'));
  try {
    const env = {
      PATH: `${join(FAKE_CUDA, 'bin')}:${process.env['PATH'] ?? ''}`,
      PYTHONPATH: FAKE_CUDA,
      FAKE_GPU_REGISTRY: registry,
      ...extra,
    };
    return gpuCheck(['--platform', 'cuda'], env);
  } finally {
    rmSync(registry, { recursive: true, force: true });
  }
}

beforeAll(requireBuiltCli);

function gpuCheck(args: string[], env: Record<string, string> = {}) {
  // The stand-in GPUs are mapped through CUDA_VISIBLE_DEVICES as omnistage sets it, never the caller's.
  const { CUDA_VISIBLE_DEVICES: _inherited, ...base } = process.env;
  return spawnSync('bash', [SCRIPT, ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...base, ...env },
    timeout: 180_000,
  });
}

describe('scripts/gpu-check.sh', { timeout: 200_000 }, () => {
  it('--dry-run passes every check that needs no GPU and says which it skipped', () => {
    const r = gpuCheck(['--dry-run']);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^gpu-check: node v\d+\.\d+\.\d+ .*platform cpu$/m);
    for (const stage of [0, 1]) {
      expect(out).toMatch(
        new RegExp(
          `^PASS mapping stage ${stage} replica 0: OMNISTAGE_VISIBLE_DEVICES=${stage}, plan mapped \\['${stage}'\\]$`,
          'm',
        ),
      );
      expect(out).toMatch(new RegExp(`^FIGURE bring-up stage ${stage} replica 0: \\d+ ms lock\\+spawn\\+attach`, 'm'));
    }
    expect(out).toMatch(/^PASS admission: .*exit 2, OMNI_PLAN_OVERCOMMIT$/m);
    expect(out).toMatch(/^PASS locks serialise same-GPU init: stage \d init .* then stage \d init /m);
    expect(out).toMatch(/^PASS lock events: acquired s(\d) → released s\1 → acquired s\d → released s\d$/m);
    expect(out.match(/^PASS teardown processes: 2 pids of the run, alive after it: \[\]$/gm)).toHaveLength(2);
    expect(
      out.match(/^FIGURE matmul pid \d+: 48x48 in [\d.]+ ms = [\d.e+-]+ TFLOP\/s \(pure-Python CPU fallback\)$/gm),
    ).toHaveLength(2);
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

  it.skipIf(spawnSync('nvidia-smi', ['-L']).status === 0)(
    '--platform cuda without nvidia-smi says so (exit 2) instead of planning',
    () => {
      const r = gpuCheck(['--platform', 'cuda']);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(
        'nvidia-smi not found: --platform cuda needs NVIDIA GPUs and their driver (or use --dry-run)',
      );
    },
  );

  it('--platform cuda against stand-in GPUs: uuids and nvidia-smi pids match the plan, nothing left on a GPU', () => {
    const r = withFakeCuda();
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/^GPUs: 0 1f0e3a52-\S+a, 1 1f0e3a52-\S+b$/m);
    for (const [stage, gpu] of [
      [0, 'a'],
      [1, 'b'],
    ] as const) {
      expect(r.stdout).toMatch(
        new RegExp(
          `^PASS mapping stage ${stage} replica 0 device count: torch.cuda.device_count\\(\\) = 1, plan 1$`,
          'm',
        ),
      );
      expect(r.stdout).toMatch(
        new RegExp(`^PASS mapping stage ${stage} replica 0 GPU uuid: .*0000000${gpu}'\\]$`, 'm'),
      );
      expect(r.stdout).toMatch(
        new RegExp(
          `^PASS mapping stage ${stage} replica 0 nvidia-smi pids: pid \\d+ is on \\['1f0e3a52-\\S+${gpu}'\\]`,
          'm',
        ),
      );
    }
    expect(r.stdout.match(/^PASS teardown GPUs: pids of the run still on a GPU: \[\]$/gm)).toHaveLength(2);
    expect(r.stdout).toMatch(/^gpu-check \(cuda\): 17 passed, 0 failed, 0 skipped$/m);
  });

  it('--platform cuda fails when a replica sees more GPUs than the plan gave it', () => {
    const r = withFakeCuda({ FAKE_TORCH_IGNORES_VISIBLE: '1' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL mapping stage 0 replica 0 device count: torch.cuda.device_count\(\) = 2, plan 1$/m);
    expect(r.stdout).toMatch(/^gpu-check \(cuda\): \d+ passed, [1-9]\d* failed/m);
  });
});
