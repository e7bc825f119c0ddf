/**
 * Done-when 1, 2 and 7 on every upstream vLLM-Omni stage config: `validate` exits 0, `plan --json`
 * has the plan contract, and `up --engine reference --platform cpu` brings the pipeline up (real
 * replica processes, real device locks) and, on SIGINT, down with exit 0 — leaving no replica
 * process, no lock or holder file and no run directory — while writing well-formed events.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  UPSTREAM_FIXTURES,
  createSandbox,
  eventSchemaProblems,
  isAlive,
  readEvents,
  replicaPids,
  requireBuiltCli,
  runCleanups,
  runCli,
  startCli,
  waitAllDead,
  upstreamSelection,
  type Sandbox,
} from './helpers.js';

const FILES = readdirSync(UPSTREAM_FIXTURES)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

let box: Sandbox;
beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
});
afterAll(runCleanups);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): boolean => Number.isInteger(v);
const isStringArray = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Checks `plan --json` against the contract; returns the problems found. */
function planContractProblems(plan: unknown): string[] {
  const p: string[] = [];
  if (!isObject(plan)) return ['the plan is not a JSON object'];
  if (typeof plan['platform'] !== 'string') p.push('platform');
  if (!isStringArray(plan['device_env'])) p.push('device_env');
  if (!isStringArray(plan['visible_devices'])) p.push('visible_devices');
  const stages = plan['stages'];
  if (!Array.isArray(stages) || stages.length === 0) p.push('stages');
  for (const [i, s] of (Array.isArray(stages) ? stages : []).entries()) {
    if (!isObject(s)) {
      p.push(`stages[${i}]`);
      continue;
    }
    for (const k of ['stage_idx', 'stage_id', 'num_replicas', 'devices_per_replica'])
      if (!isInt(s[k])) p.push(`stages[${i}].${k}`);
    if (typeof s['stage_type'] !== 'string') p.push(`stages[${i}].stage_type`);
    const replicas = s['replicas'];
    if (!Array.isArray(replicas) || replicas.length !== s['num_replicas']) p.push(`stages[${i}].replicas`);
    for (const [j, r] of (Array.isArray(replicas) ? replicas : []).entries()) {
      const at = `stages[${i}].replicas[${j}]`;
      if (!isObject(r)) {
        p.push(at);
        continue;
      }
      if (!isInt(r['replica_id'])) p.push(`${at}.replica_id`);
      if (typeof r['launch_mode'] !== 'string') p.push(`${at}.launch_mode`);
      if (!(r['devices'] === null || typeof r['devices'] === 'string')) p.push(`${at}.devices`);
      if (!isStringArray(r['physical_devices'])) p.push(`${at}.physical_devices`);
      if (!isStringArray(r['lock_devices'])) p.push(`${at}.lock_devices`);
      if (!isInt(r['group'])) p.push(`${at}.group`);
    }
  }
  const groups = plan['groups'];
  if (!Array.isArray(groups) || groups.length === 0) p.push('groups');
  for (const [i, g] of (Array.isArray(groups) ? groups : []).entries()) {
    if (!isObject(g) || !isInt(g['id']) || !isStringArray(g['lock_devices'])) p.push(`groups[${i}]`);
    const members = isObject(g) ? g['replicas'] : undefined;
    if (!Array.isArray(members) || !members.every((m) => Array.isArray(m) && m.length === 2 && m.every(isInt)))
      p.push(`groups[${i}].replicas`);
  }
  const warnings = plan['warnings'];
  if (!Array.isArray(warnings)) p.push('warnings');
  for (const [i, w] of (Array.isArray(warnings) ? warnings : []).entries()) {
    if (!isObject(w) || typeof w['code'] !== 'string' || typeof w['message'] !== 'string') p.push(`warnings[${i}]`);
    else if (typeof w['file'] !== 'string' || !isInt(w['line']) || !isInt(w['col']))
      p.push(`warnings[${i}] location (file/line/col)`);
  }
  return p;
}

describe('upstream stage configs', { timeout: 90_000 }, () => {
  it('the fixture directory is there', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(6);
  });

  it.each(FILES)('%s: validate exits 0 and plan --json has the contract fields', async (name) => {
    const file = join(UPSTREAM_FIXTURES, name);
    const common = ['--platform', 'cpu', ...upstreamSelection(name)];
    const [validate, plan, onReference] = await Promise.all([
      runCli(['validate', file, ...common], { tmpDir: box.tmp }),
      runCli(['plan', file, '--json', ...common], { tmpDir: box.tmp }),
      runCli(['plan', file, '--json', '--engine', 'reference', ...common], { tmpDir: box.tmp }),
    ]);
    expect(validate.code, validate.stderr).toBe(0);
    expect(plan.code, plan.stderr).toBe(0);
    // Every engine arg of an upstream file is one the reference engines take (they stand in for vLLM-Omni's).
    expect(onReference.code, onReference.stderr).toBe(0);
    const unknownArgs = (
      JSON.parse(onReference.stdout) as { warnings: { code: string; message: string }[] }
    ).warnings.filter((w) => w.code === 'OMNI_WARN_ENGINE_ARG_UNKNOWN');
    expect(unknownArgs.map((w) => w.message)).toEqual([]);
    const parsed: unknown = JSON.parse(plan.stdout);
    expect(planContractProblems(parsed)).toEqual([]);
    const p = parsed as {
      platform: string;
      stages: { replicas: { group: number; stage_id?: number }[]; stage_id: number }[];
      groups: { id: number; replicas: [number, number][] }[];
    };
    expect(p.platform).toBe('cpu');
    // Every replica is in exactly the group it names.
    for (const s of p.stages) {
      for (const [rid, r] of s.replicas.entries()) {
        const holders = p.groups.filter((g) => g.replicas.some(([sid, rep]) => sid === s.stage_id && rep === rid));
        expect(holders.map((g) => g.id)).toEqual([r.group]);
      }
    }
  });

  it.each(FILES)('%s: up --engine reference comes up, and SIGINT takes it down cleanly (exit 0)', async (name) => {
    const events = box.eventsFile(name);
    const up = startCli(
      [
        'up',
        join(UPSTREAM_FIXTURES, name),
        ...upstreamSelection(name),
        '--engine',
        'reference',
        '--platform',
        'cpu',
        '--lock-dir',
        box.lockDir,
        '--events',
        events,
      ],
      { tmpDir: box.tmp },
    );
    await up.waitForEvent((e) => e.type === 'pipeline:ready', 45_000);
    const pids = replicaPids(up.events());
    expect(pids.length).toBeGreaterThan(0);
    expect(pids.every(isAlive), up.describe()).toBe(true);
    expect(box.runDirLeftovers().length, 'the run directory exists while up').toBe(1);

    up.signal('SIGINT');
    const exit = await up.waitExit(30_000);
    expect(exit, up.describe()).toEqual({ code: 130, signal: null });

    const all = readEvents(events, true);
    expect(all.some((e) => e.type === 'pipeline:stopped')).toBe(true);
    expect(all.some((e) => e.type === 'pipeline:failed')).toBe(false);
    expect(eventSchemaProblems(all)).toEqual([]);
    // Each replica went through every phase, and was reported ready, then exited as expected.
    const replicas = new Set(
      all.filter((e) => e.type === 'replica:spawned').map((e) => `${String(e['stage_id'])}/${String(e['replica_id'])}`),
    );
    for (const key of replicas) {
      const phases = all
        .filter(
          (e) =>
            e.type === 'replica:phase' &&
            e['status'] === 'end' &&
            `${String(e['stage_id'])}/${String(e['replica_id'])}` === key,
        )
        .map((e) => e['phase']);
      expect(phases, key).toEqual(['metadata', 'args', 'worker', 'lock', 'spawn', 'attach']);
      expect(
        all.some((e) => e.type === 'replica:ready' && `${String(e['stage_id'])}/${String(e['replica_id'])}` === key),
      ).toBe(true);
    }
    expect(all.filter((e) => e.type === 'replica:exit').every((e) => e['expected'] === true)).toBe(true);
    // Nothing of the run is left: processes, locks, holder files, run directory.
    expect(await waitAllDead(pids, 2_000), `replicas still alive: ${pids.filter(isAlive).join(', ')}`).not.toBeNull();
    expect(box.lockDirLeftovers()).toEqual([]);
    expect(box.runDirLeftovers()).toEqual([]);
  });
});
