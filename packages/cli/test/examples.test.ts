/**
 * Every example is run with the one command its README gives — the first `npx ...` line, exactly
 * as written, through a shell at the repository root, as a user would — and its outputs are
 * checked, not just type-checked. The quickstart also runs as the root README's
 * `npm run quickstart` does (its workspace `start` script).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelMs, pageProblems, readTimelinePage } from './timeline-page.js';

const root = resolve(import.meta.dirname, '../../..');
let lockDir: string;

beforeAll(() => {
  lockDir = mkdtempSync(join(tmpdir(), 'examples-locks-'));
});
afterAll(() => {
  rmSync(lockDir, { recursive: true, force: true });
});

function runExample(workspace: string, folder: string): { status: number | null; stdout: string; stderr: string } {
  rmSync(join(root, 'examples', folder, 'out'), { recursive: true, force: true });
  const r = spawnSync('npm', ['run', 'start', '-w', workspace], {
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

/** The first `npx` command line of the first sh block of an example's README. */
function readmeCommand(folder: string): string {
  const block = /```sh\n([\s\S]*?)```/.exec(readme(folder))?.[1] ?? '';
  const line = block.split('\n').find((l) => l.startsWith('npx '));
  if (line === undefined) throw new Error(`examples/${folder}/README.md has no npx command in its first sh block`);
  return line.replace(/\s+#.*$/, '').trim();
}

/** Runs an example's README command from the repository root (its `out/` cleared first). */
function runReadmeCommand(folder: string): { status: number | null; stdout: string; stderr: string; command: string } {
  rmSync(join(root, 'examples', folder, 'out'), { recursive: true, force: true });
  const command = readmeCommand(folder);
  const r = spawnSync('bash', ['-c', command], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, OMNISTAGE_LOCK_DIR: lockDir },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, command };
}

describe('examples run with the command in their README', { timeout: 180_000 }, () => {
  it('quickstart writes one PNG per prompt (the README first command runs it)', () => {
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('npm run quickstart');
    const r = runExample('@omnistage-example/quickstart', 'quickstart');
    expect(r.status, r.stderr).toBe(0);
    // Stage 0's text is shown as well as the images, and the run says its engines are stand-ins.
    expect(r.stdout).toMatch(/^\[r1\] stage 0 \(replica 0\) text: \S+/m);
    expect(r.stdout).toMatch(/^\[r2\] stage 1 \(replica 0\) image: \S+r2-stage1\.png$/m);
    expect(r.stderr).toContain('stage(s) 0, 1 ran on reference engines');
    const out = join(root, 'examples/quickstart/out');
    const pngs = readdirSync(out).filter((f) => f.endsWith('.png'));
    expect(pngs.sort()).toEqual(['r1-stage1.png', 'r2-stage1.png']);
    const a = readFileSync(join(out, 'r1-stage1.png'));
    const b = readFileSync(join(out, 'r2-stage1.png'));
    expect(a.subarray(1, 4).toString('ascii')).toBe('PNG');
    expect(a.equals(b)).toBe(false);
  });

  it('quickstart: its README command writes the same two PNGs', () => {
    const r = runReadmeCommand('quickstart');
    expect(r.command).toMatch(/^npx omnistage run examples\/quickstart\/pipeline\.yaml /);
    expect(r.status, r.stderr).toBe(0);
    const pngs = readdirSync(join(root, 'examples/quickstart/out')).filter((f) => f.endsWith('.png'));
    expect(pngs.sort()).toEqual(['r1-stage1.png', 'r2-stage1.png']);
  });

  it('omni-voice serves 20 prompts and writes 20 WAVs', () => {
    const r = runReadmeCommand('omni-voice');
    expect(r.status, r.stderr).toBe(0);
    const wavs = readdirSync(join(root, 'examples/omni-voice/out')).filter((f) => f.endsWith('.wav'));
    expect(wavs).toHaveLength(20);
    expect(r.stdout.match(/ stage 0 \(replica 0\) text: /g)).toHaveLength(20);
  });

  it('custom-stage-type: the tts plugin file speaks the LLM text', () => {
    const r = runReadmeCommand('custom-stage-type');
    expect(r.status, r.stderr).toBe(0);
    const wav = readFileSync(join(root, 'examples/custom-stage-type/out/r1-stage1.wav'));
    expect(wav.subarray(0, 4).toString('ascii')).toBe('RIFF');
    expect(r.stdout).toMatch(/stage 0 \(replica 0\) text: \S+/);
  });

  it('talking-pipeline: espeak-ng speaks each LLM line into a WAV of real speech, different per text', () => {
    const r = runReadmeCommand('talking-pipeline');
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.match(/stage 0 \(replica 0\) text: .+/g) ?? [];
    expect(lines).toHaveLength(2);
    const out = join(root, 'examples/talking-pipeline/out');
    const [a, b] = ['r1-stage1.wav', 'r2-stage1.wav'].map((f) => speechOf(readFileSync(join(out, f))));
    for (const w of [a!, b!]) {
      expect(w.seconds).toBeGreaterThan(0.5);
      expect(w.rms).toBeGreaterThan(500); // of 32767: speech, not silence
      expect(w.silentShare).toBeGreaterThan(0.02); // speech pauses between words; a tone or noise would not
    }
    expect(a!.samples.equals(b!.samples)).toBe(false);
  });

  it('talking-pipeline without espeak-ng on PATH fails at attach, naming the Debian package to install', () => {
    const python = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], {
      encoding: 'utf8',
    }).stdout.trim();
    const emptyPath = mkdtempSync(join(tmpdir(), 'no-espeak-'));
    try {
      const r = spawnSync(
        process.execPath,
        [
          join(root, 'packages/cli/bin/omnistage.js'),
          'run',
          'examples/talking-pipeline/pipeline.yaml',
          '--platform',
          'cpu',
          '--input',
          'hello',
          '--out',
          join(emptyPath, 'out'),
        ],
        {
          cwd: root,
          encoding: 'utf8',
          env: { ...process.env, PATH: emptyPath, OMNISTAGE_PYTHON: python, OMNISTAGE_LOCK_DIR: lockDir },
          timeout: 120_000,
        },
      );
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/OMNI_WORKER_EXITED: stage 1 replica 0 .* exited during ready/);
      expect(r.stderr).toContain('install the Debian package espeak-ng (apt-get install espeak-ng)');
      expect(r.stderr).not.toContain('Traceback');
    } finally {
      rmSync(emptyPath, { recursive: true, force: true });
    }
  });

  it('third-party-plugin writes a timeline whose rows name devices and launch groups, on a ticked axis, saying why stage 1 started late', () => {
    const r = runReadmeCommand('third-party-plugin');
    expect(r.status, r.stderr).toBe(0);
    const page = readTimelinePage(readFileSync(join(root, 'examples/third-party-plugin/out/timeline.html'), 'utf8'));
    expect(pageProblems(page)).toEqual([]);
    expect(page.title).toMatch(/^omnistage bring-up, run \S+$/);
    const rows = new Map(page.svg.rows.map((row) => [row.key, row]));
    // Rows grouped by launch group: stage 0 replica 0 and stage 1 share device 0 (group 0); stage 0 replica 1 has device 1.
    expect(page.svg.rows.map((row) => row.key)).toEqual(['0/0', '1/0', '0/1']);
    const expected = { '0/0': ['0 → 0', '0'], '1/0': ['0 → 0', '0'], '0/1': ['1 → 1', '1'] } as const;
    for (const [key, [devices, group]] of Object.entries(expected)) {
      const row = rows.get(key)!;
      const [stage, replica] = key.split('/');
      expect(row.texts, key).toMatchObject({
        label: `stage ${stage} replica ${replica}`,
        devices: `devices ${devices}`,
        group: `launch group ${group}`,
      });
      expect(
        row.bars.map((b) => b.kind).filter((k) => ['lock', 'spawn', 'attach'].includes(k)),
        key,
      ).toEqual(['lock', 'spawn', 'attach']);
      const table = page.table.rows[page.table.rowKeys.indexOf(key)]!;
      expect(table, key).toMatchObject({
        Replica: `stage ${stage} replica ${replica}`,
        'Launch group': group,
        'Devices (logical → physical)': devices,
      });
    }
    // One colour per group, and a legend entry naming each group's members.
    expect(rows.get('0/0')!.band).toBe(rows.get('1/0')!.band);
    expect(rows.get('0/1')!.band).not.toBe(rows.get('0/0')!.band);
    expect(page.svg.groupKeys.map((g) => [g.group, g.color])).toEqual([
      ['0', rows.get('0/0')!.band],
      ['1', rows.get('0/1')!.band],
    ]);
    expect(page.svg.groupKeys[0]!.text).toContain('launch group 0: stage 0 replica 0, stage 1 replica 0');
    expect(page.svg.groupKeys[1]!.text).toContain('launch group 1: stage 0 replica 1');

    // Why late: stage 1 waited for its group (stage 0 replica 0 had to be ready); the group-wait bar ends where its lock starts.
    const late = rows.get('1/0')!;
    expect(late.texts['why']).toMatch(
      /^late: waited \d+ ms for launch group 0: stage 0 replica 0 had to be ready first$/,
    );
    const wait = late.bars.find((b) => b.kind === 'group')!;
    expect(wait.title).toMatch(/^waiting for its launch group: \d+ ms/);
    expect(Math.abs(wait.x + wait.width - late.bars.find((b) => b.kind === 'lock')!.x)).toBeLessThan(1.5);
    for (const key of ['0/0', '0/1']) {
      expect(rows.get(key)!.texts['why'], key).toBe('started at once');
      expect(
        rows.get(key)!.bars.some((b) => b.kind === 'group' || b.kind === 'locks'),
        key,
      ).toBe(false);
    }
    // The table says the same in numbers: stage 1 started locking once stage 0 replica 0 was ready; replica 1 (its own group) long before.
    const cell = (key: string, column: string) => labelMs(page.table.rows[page.table.rowKeys.indexOf(key)]![column]!);
    expect(cell('1/0', 'Started locking')).toBeGreaterThanOrEqual(cell('0/0', 'Ready'));
    expect(cell('0/1', 'Started locking')).toBeLessThan(cell('0/0', 'Ready'));
    expect(page.table.rows[page.table.rowKeys.indexOf('1/0')]!['Why late']).toBe(
      late.texts['why']!.replace(/^late: /, ''),
    );
    // Every replica became ready within the axis.
    const axisEnd = labelMs(page.svg.ticks.at(-1)!.label);
    for (const key of rows.keys()) expect(cell(key, 'Ready'), key).toBeLessThanOrEqual(axisEnd);
  });

  it('upstream-dry-run plans and brings up every vLLM-Omni file on reference engines', () => {
    const r = runReadmeCommand('upstream-dry-run');
    expect(r.command).toBe('npx omnistage-dry-run');
    expect(r.status, r.stderr).toBe(0);
    const configs = readdirSync(join(root, 'examples/upstream-dry-run/configs')).filter((f) => f.endsWith('.yaml'));
    expect(configs.length).toBeGreaterThanOrEqual(6);
    for (const c of configs) expect(r.stdout).toContain(`=== configs/${c}`);
    expect(r.stdout.match(/^stage +model_stage +type +inputs +output +replica/gm)).toHaveLength(configs.length);
    expect(existsSync(join(root, 'examples/upstream-dry-run/out'))).toBe(true);
    // Each config writes its own outputs, and each plan warning is printed once (by `plan`).
    for (const c of configs)
      expect(existsSync(join(root, 'examples/upstream-dry-run/out', c.replace(/\.yaml$/, '')))).toBe(true);
    const warnings = r.stderr.split('\n').filter((l) => / warning OMNI_/.test(l));
    expect(warnings.length).toBeGreaterThan(0);
    expect(new Set(warnings).size, warnings.join('\n')).toBe(warnings.length);
  });

  it('vllm-disaggregated: plan --json gives every vllm replica its own --kv-transfer-config, no port shared', () => {
    const r = runReadmeCommand('vllm-disaggregated');
    expect(r.command).toContain('--json');
    expect(r.status, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as {
      stages: {
        stage_id: number;
        replicas: { worker: { command: string; args: string[]; env: Record<string, string> } }[];
      }[];
      transfers: unknown[];
    };
    // The vllm engine drives the edge as vLLM's prefill → decode (the README's table says each step).
    expect(plan.transfers).toEqual([
      {
        from: 0,
        to: 1,
        connector: 'NixlConnector',
        carried_by: 'engine',
        flow: expect.stringMatching(/prefill.*max_tokens 1.*kv_transfer_params.*decode/),
      },
    ]);
    const replicas = plan.stages.flatMap((s) => s.replicas.map((rep) => ({ stage: s.stage_id, ...rep.worker })));
    expect(replicas).toHaveLength(4);
    const ports: number[] = [];
    const ranks: unknown[] = [];
    for (const rep of replicas) {
      expect(rep.args.slice(0, 2)).toEqual(['serve', 'Qwen/Qwen2.5-0.5B-Instruct']);
      const kv = JSON.parse(rep.args[rep.args.indexOf('--kv-transfer-config') + 1]!) as Record<string, unknown>;
      expect(kv).toMatchObject({
        kv_connector: 'NixlConnector',
        kv_parallel_size: 4,
        kv_connector_extra_config: { backends: ['UCX'] },
      });
      ranks.push(kv['kv_rank']);
      ports.push(
        Number(rep.args[rep.args.indexOf('--port') + 1]),
        Number(kv['kv_port']),
        Number(rep.env['VLLM_NIXL_SIDE_CHANNEL_PORT']),
      );
    }
    expect(ranks.sort()).toEqual([0, 1, 2, 3]);
    expect(ports.every((p) => Number.isInteger(p) && p > 0)).toBe(true);
    expect(new Set(ports).size).toBe(ports.length); // 4 HTTP + 4 kv_port + 4 side channels, all distinct
  });

  it('leaves no lock or run directory behind', () => {
    expect(readdirSync(lockDir)).toEqual([]);
  });
});

/** A 16-bit PCM WAV, checked chunk by chunk: duration, RMS, and the share of near-silent 10 ms frames. */
function speechOf(bytes: Buffer): { seconds: number; rms: number; silentShare: number; samples: Buffer } {
  expect(bytes.subarray(0, 4).toString('latin1')).toBe('RIFF');
  expect(bytes.subarray(8, 12).toString('latin1')).toBe('WAVE');
  expect(bytes.readUInt32LE(4)).toBe(bytes.length - 8);
  let rate = 0;
  let samples: Buffer | undefined;
  for (let off = 12; off + 8 <= bytes.length;) {
    const id = bytes.subarray(off, off + 4).toString('latin1');
    const size = bytes.readUInt32LE(off + 4);
    if (id === 'fmt ') {
      expect([bytes.readUInt16LE(off + 8), bytes.readUInt16LE(off + 10), bytes.readUInt16LE(off + 22)]).toEqual([
        1, 1, 16,
      ]); // PCM mono 16-bit
      rate = bytes.readUInt32LE(off + 12);
    }
    if (id === 'data') {
      expect(off + 8 + size).toBe(bytes.length);
      samples = bytes.subarray(off + 8, off + 8 + size);
    }
    off += 8 + size + (size % 2);
  }
  expect(rate).toBeGreaterThan(0);
  const pcm = samples!;
  const n = pcm.length / 2;
  let sum = 0;
  const frame = Math.round(rate / 100);
  let frames = 0;
  let silent = 0;
  let frameSum = 0;
  for (let i = 0; i < n; i++) {
    const v = pcm.readInt16LE(i * 2);
    sum += v * v;
    frameSum += v * v;
    if ((i + 1) % frame === 0) {
      frames++;
      if (Math.sqrt(frameSum / frame) < 100) silent++;
      frameSum = 0;
    }
  }
  return { seconds: n / rate, rms: Math.sqrt(sum / n), silentShare: silent / Math.max(1, frames), samples: pcm };
}
