/**
 * Every example is run with the one command its README gives (`npm run start -w <name>`), as a
 * user would, and its outputs are checked — not just type-checked.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
let lockDir: string;

beforeAll(() => {
  lockDir = mkdtempSync(join(tmpdir(), 'examples-locks-'));
});
afterAll(() => {
  rmSync(lockDir, { recursive: true, force: true });
});

function runExample(workspace: string, folder: string, extra: string[] = []): { status: number | null; stdout: string; stderr: string } {
  rmSync(join(root, 'examples', folder, 'out'), { recursive: true, force: true });
  const r = spawnSync('npm', ['run', 'start', '-w', workspace, ...(extra.length > 0 ? ['--', ...extra] : [])], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, OMNISTAGE_LOCK_DIR: lockDir },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readme(folder: string): string {
  return readFileSync(join(root, 'examples', folder, 'README.md'), 'utf8');
}

describe('examples run with the command in their README', { timeout: 180_000 }, () => {
  it('quickstart writes one PNG per prompt (the README first command runs it)', () => {
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('npm run quickstart');
    const r = runExample('@omnistage-example/quickstart', 'quickstart');
    expect(r.status, r.stderr).toBe(0);
    const out = join(root, 'examples/quickstart/out');
    const pngs = readdirSync(out).filter((f) => f.endsWith('.png'));
    expect(pngs.sort()).toEqual(['r1-stage1.png', 'r2-stage1.png']);
    const a = readFileSync(join(out, 'r1-stage1.png'));
    const b = readFileSync(join(out, 'r2-stage1.png'));
    expect(a.subarray(1, 4).toString('ascii')).toBe('PNG');
    expect(a.equals(b)).toBe(false);
  });

  it('omni-voice serves 20 prompts and writes 20 WAVs', () => {
    expect(readme('omni-voice')).toContain('npm run start -w @omnistage-example/omni-voice');
    const r = runExample('@omnistage-example/omni-voice', 'omni-voice');
    expect(r.status, r.stderr).toBe(0);
    const wavs = readdirSync(join(root, 'examples/omni-voice/out')).filter((f) => f.endsWith('.wav'));
    expect(wavs).toHaveLength(20);
    expect(r.stdout.match(/ stage 0 \(replica 0\) text: /g)).toHaveLength(20);
  });

  it('custom-stage-type: the tts plugin file speaks the LLM text', () => {
    expect(readme('custom-stage-type')).toContain('npm run start -w @omnistage-example/custom-stage-type');
    const r = runExample('@omnistage-example/custom-stage-type', 'custom-stage-type');
    expect(r.status, r.stderr).toBe(0);
    const wav = readFileSync(join(root, 'examples/custom-stage-type/out/r1-stage1.wav'));
    expect(wav.subarray(0, 4).toString('ascii')).toBe('RIFF');
    expect(r.stdout).toMatch(/stage 0 \(replica 0\) text: \S+/);
  });

  it('third-party-plugin writes an HTML timeline with lock/spawn/attach bars per replica', () => {
    expect(readme('third-party-plugin')).toContain('npm run start -w omnistage-plugin-timeline');
    const r = runExample('omnistage-plugin-timeline', 'third-party-plugin');
    expect(r.status, r.stderr).toBe(0);
    const html = readFileSync(join(root, 'examples/third-party-plugin/out/timeline.html'), 'utf8');
    for (const who of ['stage 0 replica 0', 'stage 0 replica 1', 'stage 1 replica 0']) expect(html).toContain(who);
    for (const phase of ['lock: ', 'spawn: ', 'attach: ']) expect(html.split(phase).length - 1).toBe(3);
  });

  it('upstream-dry-run plans and brings up every vLLM-Omni file on reference engines', () => {
    expect(readme('upstream-dry-run')).toContain('npm run start -w @omnistage-example/upstream-dry-run');
    const r = runExample('@omnistage-example/upstream-dry-run', 'upstream-dry-run');
    expect(r.status, r.stderr).toBe(0);
    const configs = readdirSync(join(root, 'examples/upstream-dry-run/configs')).filter((f) => f.endsWith('.yaml'));
    expect(configs.length).toBeGreaterThanOrEqual(6);
    for (const c of configs) expect(r.stdout).toContain(`=== configs/${c}`);
    expect(r.stdout.match(/^stage +type +replica/gm)).toHaveLength(configs.length);
    expect(existsSync(join(root, 'examples/upstream-dry-run/out'))).toBe(true);
  });

  it('leaves no lock or run directory behind', () => {
    expect(readdirSync(lockDir)).toEqual([]);
  });
});
