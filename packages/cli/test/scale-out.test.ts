/**
 * Scale-out acceptance test (issue #11): a real etcd, a head (`serve --head`, control port on
 * 127.0.0.1) running stages 0 and 2 of a three-stage pipeline whose middle stage has
 * `num_replicas: 0`, and two agents, hosts a on 127.0.0.2 and b on 127.0.0.3 (`--advertise`: their
 * replicas dial the head from that address), each giving that stage one replica over TCP. Crashes
 * are SIGKILL, a silent partition is SIGSTOP of an agent and its replica. TTL 2 s.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveReplicaToken } from '@omnistage/core/cluster';
import {
  createSandbox,
  isAlive,
  lockIntervals,
  onCleanup,
  REPO_ROOT,
  requireBuiltCli,
  runCleanups,
  startCli,
  TEST_FIXTURES,
  waitFor,
  type CliProcess,
  type OmniEventLine,
  type Sandbox,
} from './helpers.js';
import { ETCD_MISSING, startEtcd, type TestEtcd } from './etcd-helpers.js';

const FIXTURE = join(TEST_FIXTURES, 'head-three-stage.yaml');
/** A third-party plugin whose taps of the start sequence write what they saw to TAP_RECORD_FILE. */
const TAP_RECORDER = join(TEST_FIXTURES, 'tap-recorder-plugin', 'plugin.mjs');
const TTL_S = 2;
const SECRET = 'scale-out-test-secret-0123456789abcdef';
/** Each "host" on its own loopback address (Linux routes all of 127.0.0.0/8 to lo). */
const ADDRESS: Record<string, string> = { a: '127.0.0.2', b: '127.0.0.3', c: '127.0.0.4' };

/** Replicas an agent reported starting: pid and incarnation, in order. */
function agentReplicas(agent: CliProcess): { pid: number; replica_id: number; incarnation: string }[] {
  return [...agent.stderr().matchAll(/stage 1 replica (\d+): started \(pid (\d+), incarnation ([^)]+)\)/g)].map(
    (m) => ({ replica_id: Number(m[1]), pid: Number(m[2]), incarnation: m[3]! }),
  );
}

/** A sandbox, a throwaway etcd and the cluster secret file (mode 0600) every head and agent reads. */
async function openCluster(): Promise<{ box: Sandbox; etcd: TestEtcd; secretFile: string }> {
  requireBuiltCli();
  if (ETCD_MISSING !== null) throw new Error(ETCD_MISSING);
  const box = await createSandbox();
  const etcd = await startEtcd();
  const secretFile = join(box.root, 'cluster-secret');
  await writeFile(secretFile, SECRET);
  await chmod(secretFile, 0o600);
  return { box, etcd, secretFile };
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
    } catch {
      // gone
    }
  }
}

/** One raw hello on the head's TCP control port; resolves with the first line the head answers. */
function helloWith(control: string, token: string, replicaId: number): Promise<Record<string, unknown>> {
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(control)!;
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: m[1]!, port: Number(m[2]) });
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('connect', () =>
      socket.write(
        `${JSON.stringify({ type: 'hello', v: 1, token, stage_id: 1, replica_id: replicaId, pid: process.pid })}\n`,
      ),
    );
    socket.on('data', (d: string) => {
      buffered += d;
      const nl = buffered.indexOf('\n');
      if (nl >= 0) {
        socket.destroy();
        resolve(JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>);
      }
    });
    socket.on('error', reject);
  });
}

describe.skipIf(ETCD_MISSING !== null && !process.env['CI'])('head and agents on etcd', () => {
  let box: Sandbox;
  let etcd: TestEtcd;
  let secretFile: string;
  let head: CliProcess;
  let url: string;
  let control: string;
  const agents = new Map<string, CliProcess>();
  // The head is SIGKILLed last: its private payload directory stays for a reaper that never comes to a
  // sandbox, so it goes in the sandbox (removed with it), not in /dev/shm.
  const SANDBOX_PAYLOADS = (): Record<string, string> => ({ OMNISTAGE_PAYLOAD_DIR: box.tmp });

  const tapFile = (hostId: string): string => join(box.root, `taps-${hostId}.jsonl`);
  const startAgent = (hostId: string, file = FIXTURE): CliProcess => {
    const agent = startCli(
      [
        'agent',
        file,
        '--plugin',
        TAP_RECORDER,
        '--platform',
        'cpu',
        '--engine',
        'reference',
        '--etcd',
        etcd.url,
        '--lease-ttl',
        String(TTL_S),
        '--stages',
        '1',
        '--host-id',
        hostId,
        '--advertise',
        ADDRESS[hostId]!,
        '--cluster-secret-file',
        secretFile,
        '--lock-dir',
        join(box.root, `locks-${hostId}`),
        '--log-format',
        'json',
      ],
      { tmpDir: box.tmp, env: { ...SANDBOX_PAYLOADS(), TAP_RECORD_FILE: tapFile(hostId) } },
    );
    onCleanup(() => agentReplicas(agent).forEach((r) => killGroup(r.pid, 'SIGKILL')));
    return agent;
  };
  const events = (type: string, pred: (e: OmniEventLine) => boolean = () => true): OmniEventLine[] =>
    head.events().filter((e) => e.type === type && pred(e));
  const complete = async (): Promise<{ status: number; body: string }> => {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'head-three-stage', prompt: 'hello', max_tokens: 4 }),
    });
    return { status: res.status, body: await res.text() };
  };

  beforeAll(async () => {
    ({ box, etcd, secretFile } = await openCluster());
    head = startCli(
      [
        'serve',
        FIXTURE,
        '--platform',
        'cpu',
        '--engine',
        'reference',
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--lock-dir',
        box.lockDir,
        '--log-format',
        'json',
        '--head',
        '--etcd',
        etcd.url,
        '--lease-ttl',
        String(TTL_S),
        '--cluster-secret-file',
        secretFile,
        '--host-id',
        'head',
        '--init-timeout',
        '90',
        '--events',
        box.eventsFile('head'),
      ],
      { tmpDir: box.tmp, env: SANDBOX_PAYLOADS() },
    );
    await waitFor(() => /replicas dial tcp:\/\//.test(head.stderr()) || head.exitStatus() !== null, 60_000);
    control = /replicas dial (tcp:\/\/[0-9.]+:\d+)/.exec(head.stderr())?.[1] ?? '';
    expect(control, head.describe()).not.toBe('');
    agents.set('a', startAgent('a'));
    agents.set('b', startAgent('b'));
    const serving = await waitFor(
      () => /serving \\?"[^"]*" at http:\/\/127\.0\.0\.1:\d+\/v1/.test(head.stderr()) || head.exitStatus() !== null,
      90_000,
    );
    url = /serving \\?"[^"]*" at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(head.stderr())?.[1] ?? '';
    expect(serving && url !== '', head.describe()).toBe(true);
    // Serving starts once every stage has one replica; the second host may attach a moment later.
    expect(
      await waitFor(() => head.events().filter((e) => e.type === 'replica:attached').length >= 2, 60_000),
      head.describe(),
    ).toBe(true);
  }, 180_000);

  afterAll(runCleanups, 60_000);

  it('serves the middle stage from replicas on two hosts, requests balanced over both', async () => {
    const attached = events('replica:attached');
    expect(new Set(attached.map((e) => e['host_id']))).toEqual(new Set(['a', 'b']));
    // The head saw each host's replica connect from that host's address.
    for (const e of attached) expect(e['peer_address'], JSON.stringify(e)).toBe(ADDRESS[String(e['host_id'])]);
    expect(new Set(attached.map((e) => e.replica_id))).toEqual(new Set([0, 1]));
    const before = events('request:dispatched', (e) => e.stage_id === 1).length;
    for (let i = 0; i < 6; i++) expect((await complete()).status).toBe(200);
    const used = events('request:dispatched', (e) => e.stage_id === 1)
      .slice(before)
      .map((e) => e.replica_id);
    expect(used.filter((r) => r === 0).length).toBe(3);
    expect(used.filter((r) => r === 1).length).toBe(3);
    // Both edges stream (async_chunk): the agents' stage read its input chunk by chunk from the head's
    // thinker, and the head's last stage from the agents' stage, over the control channel.
    const streamed = events('request:dispatched', (e) => e.stage_id !== 0).slice(-12);
    expect(streamed.map((e) => e['streams_from'])).toEqual(streamed.map((e) => (e.stage_id as number) - 1));
    // Both edges touch the agents' stage: payloads in shared memory are fetched across hosts.
    expect(head.stderr()).toMatch(/edge 0 -> 1 may cross hosts: payloads in shared memory are fetched/);
    expect(head.stderr()).toMatch(/edge 1 -> 2 may cross hosts: payloads in shared memory are fetched/);
    // /metrics counts the remote replicas; status shows the head, both hosts and their replicas.
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/omnistage_replicas_up\{stage_id="1"\} 2/);
    const status = startCli(['status', '--etcd', etcd.url]);
    expect((await status.waitExit(30_000)).code).toBe(0);
    expect(status.stdout()).toMatch(/head on head \(control tcp:\/\/127\.0\.0\.1:\d+/);
    expect(status.stdout()).toMatch(/hosts: .*a \(127\.0\.0\.2, /);
    expect(status.stdout()).toMatch(/hosts: .*b \(127\.0\.0\.3, /);
    expect(status.stdout()).toMatch(/^1 +\d +a +running +\S+ +127\.0\.0\.2:\d+ /m);
    expect(status.stdout()).toMatch(/^1 +\d +b +running +\S+ +127\.0\.0\.3:\d+ /m);
  }, 60_000);

  it("a third-party plugin's taps run on an agent as they do locally: planned, lockDevices, spawn, attach", async () => {
    const runId = String(events('replica:attached')[0]!['run_id']);
    for (const hostId of ['a', 'b']) {
      const agent = agents.get(hostId)!;
      const records = (await readFile(tapFile(hostId), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((r) => r['pid'] === agent.pid);
      // The agent planned the pipeline under the head's run id: the plugin's planned tap saw it.
      expect(records[0], hostId).toEqual({ hook: 'planned', run_id: runId, pid: agent.pid });
      const replica = agentReplicas(agent).at(-1)!;
      const mine = records.filter((r) => r['replica_id'] === replica.replica_id);
      expect(
        mine.map((r) => r['hook']),
        hostId,
      ).toEqual(['lockDevices', 'spawn', 'attach']);
      // Its lock tap ran with this host's lock dir; its spawn tap saw the worker dial the head from this host.
      expect(mine[0]).toMatchObject({ stage_id: 1, run_id: runId, lock_dir: join(box.root, `locks-${hostId}`) });
      expect(mine[1]).toMatchObject({ stage_id: 1, control, host_address: ADDRESS[hostId] });
      // Its attach tap got the process the agent's launcher started.
      expect(mine[2]).toMatchObject({ stage_id: 1, replica_pid: replica.pid });
    }
  });

  it('refuses an agent whose pipeline differs, naming the difference', async () => {
    const other = join(box.root, 'other.yaml');
    await writeFile(
      other,
      (await readFile(FIXTURE, 'utf8')).replace(
        'model_stage: talker\n      max_num_seqs: 4',
        'model_stage: talker\n      max_num_seqs: 8',
      ),
    );
    const agent = startAgent('c', other);
    const exit = await agent.waitExit(60_000);
    expect(exit.code).toBe(1);
    expect(agent.stderr()).toMatch(
      /OMNI_CLUSTER: this agent's pipeline differs from the head's .*stages\[1\]\.engine_args\.max_num_seqs: the head has 4, this agent has 8/,
    );
  }, 90_000);

  it('refuses a wrong token and a token of an older incarnation', async () => {
    const current = agentReplicas(agents.get('a')!).at(-1)!;
    expect(await helloWith(control, 'x'.repeat(43), current.replica_id)).toMatchObject({
      type: 'error',
      message: 'unknown token',
    });
    const runId = String(head.events().find((e) => e.type === 'replica:attached')!['run_id']);
    const stale = deriveReplicaToken(Buffer.from(SECRET), {
      run_id: runId,
      stage_id: 1,
      replica_id: current.replica_id,
      incarnation: `${current.incarnation}-old`,
    });
    expect(await helloWith(control, stale, current.replica_id)).toMatchObject({
      type: 'error',
      message: 'unknown token',
    });
    // The right token while its replica is connected (a replay) is refused too.
    const live = deriveReplicaToken(Buffer.from(SECRET), {
      run_id: runId,
      stage_id: 1,
      replica_id: current.replica_id,
      incarnation: current.incarnation,
    });
    expect(await helloWith(control, live, current.replica_id)).toMatchObject({ type: 'error' });
    expect((await complete()).status).toBe(200); // and the real replica still serves
  }, 60_000);

  it('SIGKILL of an agent during a stream: detached within TTL + 1 s, no request lost silently, the id comes back on restart', async () => {
    const a = agents.get('a')!;
    const aReplica = agentReplicas(a).at(-1)!;
    const results: { status: number; body: string }[] = [];
    let streaming = true;
    const stream = Promise.all(
      [0, 1].map(async () => {
        while (streaming) results.push(await complete());
      }),
    );
    await waitFor(() => results.length >= 4, 30_000);
    const killedAt = Date.now();
    a.signal('SIGKILL');
    const detached = await head.waitForEvent((e) => e.type === 'replica:detached' && e['host_id'] === 'a', 30_000);
    expect(detached.ts - killedAt).toBeLessThanOrEqual(TTL_S * 1000 + 1000);
    await waitFor(() => results.length >= 12, 30_000);
    streaming = false;
    await stream;
    for (const r of results) if (r.status !== 200) expect(r.body).toMatch(/stage 1 replica \d+/);
    const afterKill = events('request:dispatched', (e) => e.stage_id === 1 && e.ts > detached.ts);
    expect(afterKill.length).toBeGreaterThan(0);
    expect(afterKill.every((e) => e.replica_id !== aReplica.replica_id)).toBe(true);

    const restarted = startAgent('a');
    agents.set('a', restarted);
    const back = await head.waitForEvent(
      (e) => e.type === 'replica:attached' && e['host_id'] === 'a' && e.ts > detached.ts,
      60_000,
    );
    expect(back.replica_id).toBe(aReplica.replica_id);
    expect(back['peer_address']).toBe(ADDRESS['a']);
  }, 120_000);

  it('SIGSTOP of an agent: detached when its lease expires; SIGCONT: it registers again, its old connection fenced', async () => {
    const a = agents.get('a')!;
    const old = agentReplicas(a).at(-1)!;
    const stoppedAt = Date.now();
    a.signal('SIGSTOP');
    killGroup(old.pid, 'SIGSTOP');
    const detached = await head.waitForEvent(
      (e) => e.type === 'replica:detached' && e['host_id'] === 'a' && e.ts >= stoppedAt,
      30_000,
    );
    expect(String(detached['reason'])).toMatch(/lease expired/);
    a.signal('SIGCONT');
    killGroup(old.pid, 'SIGCONT');
    const again = await head.waitForEvent(
      (e) => e.type === 'replica:attached' && e['host_id'] === 'a' && e.ts > detached.ts,
      60_000,
    );
    expect(again['incarnation']).not.toBe(old.incarnation);
    // The old replica lost its connection (fenced) and exited.
    expect(await waitFor(() => !isAlive(old.pid), 20_000)).toBe(true);
    // And the host serves again: within a few requests one goes to its new incarnation.
    for (let i = 0; i < 6; i++) expect((await complete()).status).toBe(200);
    expect(
      events('request:dispatched', (e) => e.stage_id === 1 && e.replica_id === again.replica_id && e.ts > again.ts)
        .length,
    ).toBeGreaterThan(0);
  }, 120_000);

  it('SIGKILL of the head: every agent stops its replicas within TTL + 2 s and exits 1', async () => {
    const live = [...agents.values()].filter((a) => a.exitStatus() === null);
    const killedAt = Date.now();
    head.signal('SIGKILL');
    const gone = await waitFor(() => live.every((a) => agentReplicas(a).every((r) => !isAlive(r.pid))), 30_000);
    const elapsed = Date.now() - killedAt;
    expect(gone).toBe(true);
    expect(elapsed).toBeLessThanOrEqual(TTL_S * 1000 + 2000);
    for (const a of live) {
      expect((await a.waitExit(30_000)).code).toBe(1);
      expect(a.stderr()).toMatch(/the head of run .* has been gone for more than 2 s/);
    }
  }, 90_000);
});

/**
 * Agents take device locks in their own host's lock dir, as a local bring-up does, and the head's
 * readiness waits for `runtime.min_ready` from the file. Stage 1 here loads slowly (init_delay_ms,
 * part of the pipeline, so head and agents agree) and needs two live replicas.
 */
describe.skipIf(ETCD_MISSING !== null && !process.env['CI'])('agents: host device locks; runtime.min_ready', () => {
  let box: Sandbox;
  let etcd: TestEtcd;
  let secretFile: string;
  let fixture: string;
  const SANDBOX_PAYLOADS = (): Record<string, string> => ({ OMNISTAGE_PAYLOAD_DIR: box.tmp });
  const lockDirOf = (hostId: string): string => join(box.root, `locks-${hostId}`);

  const startHead = (initTimeoutS: number, file = fixture): CliProcess =>
    startCli(
      [
        'serve',
        file,
        '--platform',
        'cpu',
        '--engine',
        'reference',
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--lock-dir',
        box.lockDir,
        '--log-format',
        'json',
        '--head',
        '--etcd',
        etcd.url,
        '--lease-ttl',
        String(TTL_S),
        '--cluster-secret-file',
        secretFile,
        '--host-id',
        'head',
        '--init-timeout',
        String(initTimeoutS),
        '--events',
        box.eventsFile('head'),
      ],
      { tmpDir: box.tmp, env: SANDBOX_PAYLOADS() },
    );
  /** An agent giving stage 1 `replicas` replicas that all share device 1 of this host. */
  const startAgent = (hostId: string, address: string, replicas: number, file = fixture): CliProcess => {
    const agent = startCli(
      [
        'agent',
        file,
        '--platform',
        'cpu',
        '--engine',
        'reference',
        '--etcd',
        etcd.url,
        '--lease-ttl',
        String(TTL_S),
        '--stages',
        '1',
        '--replicas',
        String(replicas),
        '--stage-overrides',
        JSON.stringify({ 1: { devices: Array.from({ length: replicas }, () => '1').join(',') } }),
        '--host-id',
        hostId,
        '--advertise',
        address,
        '--cluster-secret-file',
        secretFile,
        '--lock-dir',
        lockDirOf(hostId),
        '--log-format',
        'json',
        '--events',
        box.eventsFile(`agent-${hostId}`),
      ],
      { tmpDir: box.tmp, env: SANDBOX_PAYLOADS() },
    );
    onCleanup(() => agentReplicas(agent).forEach((r) => killGroup(r.pid, 'SIGKILL')));
    return agent;
  };
  const waitServing = async (head: CliProcess): Promise<string> => {
    await waitFor(
      () => /serving \\?"[^"]*" at http:\/\/127\.0\.0\.1:\d+\/v1/.test(head.stderr()) || head.exitStatus() !== null,
      120_000,
    );
    return /serving \\?"[^"]*" at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(head.stderr())?.[1] ?? '';
  };

  beforeAll(async () => {
    ({ box, etcd, secretFile } = await openCluster());
    fixture = join(box.root, 'slow-min-ready.yaml');
    const text = (await readFile(FIXTURE, 'utf8'))
      .replace('devices: "1"\n      num_replicas: 0', 'devices: "1"\n      num_replicas: 0\n      min_ready: 2')
      .replace(
        'model_stage: talker\n      max_num_seqs: 4',
        'model_stage: talker\n      max_num_seqs: 4\n      init_delay_ms: 3000',
      );
    expect(text).toContain('min_ready: 2');
    expect(text).toContain('init_delay_ms: 3000');
    await writeFile(fixture, text);
  }, 60_000);

  afterAll(runCleanups, 60_000);

  it('the head waits for runtime.min_ready: with one of two replicas its init deadline names the stage and the hosts seen', async () => {
    const head = startHead(25);
    const agent = startAgent('j', '127.0.0.5', 1);
    await head.waitForEvent((e) => e.type === 'replica:attached' && e['host_id'] === 'j', 60_000);
    const exit = await head.waitExit(60_000);
    expect(exit.code, head.describe()).toBe(1);
    expect(head.stderr()).toMatch(
      /OMNI_INIT_TIMEOUT: the pipeline did not have its stages' min_ready live replicas within 25s \(init_timeout\); still waiting: stage 1 \(1 of 2\); hosts seen: j/,
    );
    expect(head.stderr()).not.toMatch(/serving \\?"/);
    // Its head gone, the agent stops its replica; the replica's locks went back when it attached.
    expect((await agent.waitExit(30_000)).code).toBe(1);
    expect(readdirSync(lockDirOf('j'))).toEqual([]);
  }, 150_000);

  it("two replicas sharing a device on one agent lock it one after the other; a dead agent's lock is taken over; the lock dir is empty after it stops", async () => {
    const head = startHead(120);
    const first = startAgent('k', '127.0.0.6', 2);
    const held = await first.waitForEvent((e) => e.type === 'lock:acquired' && e['device'] === '1', 60_000);
    expect(held['pid']).toBe(first.pid);
    first.signal('SIGKILL');
    await first.waitExit(10_000);
    // Killed while one replica was still loading under the lock: the lock is left behind, held by a dead pid.
    expect(
      first.events().some((e) => e.type === 'lock:released'),
      first.describe(),
    ).toBe(false);
    expect(readdirSync(lockDirOf('k')).length).toBeGreaterThan(0);

    const second = startAgent('k', '127.0.0.6', 2);
    const url = await waitServing(head);
    expect(url, head.describe()).not.toBe('');
    // min_ready 2: the head served only once both replicas had attached.
    const attached = head.events().filter((e) => e.type === 'replica:attached');
    expect(attached.filter((e) => e.stage_id === 1).length).toBeGreaterThanOrEqual(2);
    expect(attached.every((e) => e['peer_address'] === '127.0.0.6')).toBe(true);

    // The agent releases a replica's locks when it sees the head's attached mark, a moment after the head does.
    expect(
      await waitFor(
        () => second.events().filter((e) => e.type === 'lock:released' && e['device'] === '1').length >= 2,
        30_000,
      ),
      second.describe(),
    ).toBe(true);
    const events = second.events();
    // The dead agent's lock was waited on (naming its pid) and taken over.
    expect(
      events.some((e) => e.type === 'lock:waiting' && (e['holder'] as { pid?: number } | null)?.pid === first.pid),
      second.describe(),
    ).toBe(true);
    // The two replicas of this agent took device 1 one after the other: one waited on the other.
    expect(
      events.some((e) => e.type === 'lock:waiting' && (e['holder'] as { pid?: number } | null)?.pid === second.pid),
    ).toBe(true);
    const intervals = (lockIntervals(events).get('1') ?? []).sort((x, y) => x[0] - y[0]);
    expect(intervals.length).toBe(2);
    expect(intervals.every(([from, to]) => Number.isFinite(from) && Number.isFinite(to))).toBe(true);
    expect(intervals[1]![0]).toBeGreaterThanOrEqual(intervals[0]![1]);

    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow-min-ready', prompt: 'hi', max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    second.signal('SIGTERM');
    // A clean stop by a signal exits 128 + its number, as every command does.
    expect((await second.waitExit(30_000)).code).toBe(143);
    expect(readdirSync(lockDirOf('k'))).toEqual([]);
    head.signal('SIGTERM');
    await head.waitExit(60_000);
  }, 240_000);

  it('the entry gate follows the replicas: a second agent on a stage planned with num_replicas: 0 widens admission, its detach narrows it', async () => {
    const head = startHead(120, FIXTURE);
    const first = startAgent('p', '127.0.0.8', 1, FIXTURE);
    const url = await waitServing(head);
    expect(url, head.describe()).not.toBe('');
    const stage1 = (e: OmniEventLine): { replicas: number; per_replica: number } =>
      (e['stages'] as { stage_id: number; replicas: number; per_replica: number }[]).find((s) => s.stage_id === 1)!;
    // The router is sized when the head starts serving: stage 1 has the first agent's replica.
    const initial = await head.waitForEvent((e) => e.type === 'pipeline:admission', 30_000);
    expect(stage1(initial).replicas).toBe(1);
    const second = startAgent('q', '127.0.0.9', 1, FIXTURE);
    const grown = await head.waitForEvent((e) => e.type === 'pipeline:admission' && stage1(e).replicas === 2, 60_000);
    expect(grown['capacity']).toBe(Number(initial['capacity']) + stage1(initial).per_replica);
    second.signal('SIGTERM');
    const shrunk = await head.waitForEvent(
      (e) => e.type === 'pipeline:admission' && e.ts >= grown.ts && stage1(e).replicas === 1,
      30_000,
    );
    expect(shrunk['capacity']).toBe(initial['capacity']);
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'head-three-stage', prompt: 'hi', max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    for (const p of [second, first, head]) p.signal('SIGTERM');
    for (const p of [second, first, head]) await p.waitExit(60_000);
  }, 180_000);

  it('an agent gives up a replica that fails more times in a row than runtime.restart allows, with backoff, naming it and its last exit', async () => {
    const crashing = join(box.root, 'crash-loop.yaml');
    const text = (await readFile(FIXTURE, 'utf8'))
      .replace(
        'devices: "1"\n      num_replicas: 0',
        'devices: "1"\n      num_replicas: 0\n      restart: { policy: on-failure, max_restarts: 2, backoff_ms: 100 }',
      )
      .replace(
        'model_stage: talker\n      max_num_seqs: 4',
        'model_stage: talker\n      max_num_seqs: 4\n      fail_phase: hello\n      fail_exit_code: 7',
      );
    expect(text).toContain('max_restarts: 2');
    expect(text).toContain('fail_exit_code: 7');
    await writeFile(crashing, text);
    const head = startHead(120, crashing);
    const agent = startAgent('m', '127.0.0.7', 1, crashing);
    const exit = await agent.waitExit(60_000);
    expect(exit.code, agent.describe()).toBe(1);
    // Given up after more than max_restarts failures in a row, once the streak outlasted the lease TTL
    // (until then a dead head could be the cause): a few starts, not a respawn every 250 ms forever.
    const starts = agentReplicas(agent).length;
    expect(starts, agent.describe()).toBeGreaterThanOrEqual(3);
    expect(starts, agent.describe()).toBeLessThanOrEqual(8);
    expect(agent.stderr()).toMatch(
      new RegExp(
        `OMNI_WORKER_EXITED: stage 1 replica 0 on host m failed ${starts} times in a row \\(last: [^\\n]*exit code 7`,
      ),
    );
    expect(agent.stderr()).toMatch(/reference engine: failing before hello/);
    // The waits between starts doubled from backoff_ms.
    const waits = [...agent.stderr().matchAll(/starting it again in (\d+) ms/g)].map((m) => Number(m[1]));
    expect(waits).toEqual(Array.from({ length: starts - 1 }, (_, i) => 100 * 2 ** i));
    expect(readdirSync(lockDirOf('m'))).toEqual([]);
    head.signal('SIGTERM');
    await head.waitExit(60_000);
  }, 150_000);
});

/** The stand-in `vllm serve` of plugin-llm's tests: records what it got, serves the OpenAI endpoints. */
const FAKE_VLLM = join(REPO_ROOT, 'packages', 'plugin-llm', 'test', 'fixtures', 'fake-vllm.mjs');

/** A port nobody holds on `host` now. */
function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** What the stand-in engine wrote about itself at start (`<pid>.json` in its record dir). */
function fakeVllmRecords(dir: string): { pid: number; host: string; port: number }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^\d+\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { pid: number; host: string; port: number });
}

describe.skipIf(ETCD_MISSING !== null && !process.env['CI'])('an HTTP-engine stage served by an agent', () => {
  afterAll(runCleanups, 60_000);

  it("the head attaches to the engine at the agent's advertised address, routes to it over HTTP, and re-checks its readiness", async () => {
    const { box, etcd, secretFile } = await openCluster();
    const port = await freePortOn(ADDRESS['a']!);
    const records = join(box.root, 'fake-vllm');
    const file = join(box.root, 'http-agent.yaml');
    // Stage 0 runs `vllm serve` (the stand-in) and only agents serve it; readiness is re-checked every second.
    await writeFile(
      file,
      [
        'model: fake/model',
        'runtime: { readiness_interval_s: 1, readiness_failures: 2 }',
        'stage_args:',
        '  - stage_id: 0',
        '    engine: vllm',
        '    runtime: { devices: "0", num_replicas: 0 }',
        `    engine_args: { port: ${port}, max_num_seqs: 2 }`,
        '    final_output: true',
        '',
      ].join('\n'),
    );
    onCleanup(() => fakeVllmRecords(records).forEach((r) => killGroup(r.pid, 'SIGKILL')));
    const cluster = ['--etcd', etcd.url, '--lease-ttl', String(TTL_S), '--cluster-secret-file', secretFile];
    const head = startCli(
      [
        ...['serve', file, '--platform', 'cpu', '--port', '0', '--host', '127.0.0.1', '--lock-dir', box.lockDir],
        ...['--log-format', 'json', '--head', ...cluster, '--host-id', 'head', '--init-timeout', '90'],
        ...['--events', box.eventsFile('http-head')],
      ],
      { tmpDir: box.tmp },
    );
    const agent = startCli(
      [
        ...['agent', file, '--platform', 'cpu', ...cluster, '--stages', '0', '--host-id', 'a'],
        ...['--advertise', ADDRESS['a']!, '--lock-dir', join(box.root, 'locks-a'), '--log-format', 'json'],
      ],
      { tmpDir: box.tmp, env: { OMNISTAGE_VLLM_COMMAND: FAKE_VLLM, FAKE_VLLM_RECORD_DIR: records } },
    );
    const attached = await head.waitForEvent((e) => e.type === 'replica:attached', 90_000);
    expect(attached, `${head.describe()}\n${agent.describe()}`).toMatchObject({
      stage_id: 0,
      host_id: 'a',
      peer_address: ADDRESS['a'],
    });
    // The engine binds on the agent's address, at the port the plan gave it; the head reached it there.
    const [engine] = fakeVllmRecords(records);
    expect(engine).toMatchObject({ host: ADDRESS['a'], port });
    // The head knows the replica by the pid its agent started (the engine runs under a group shim).
    const started = /stage 0 replica 0: started \(pid (\d+)/.exec(agent.stderr())?.[1];
    expect(attached['pid']).toBe(Number(started));
    await waitFor(() => /serving \\?"[^"]*" at http:\/\/127\.0\.0\.1:\d+\/v1/.test(head.stderr()), 30_000);
    const url = /serving \\?"[^"]*" at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(head.stderr())?.[1] ?? '';
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fake/model', prompt: 'hello over http', max_tokens: 3 }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const served = readFileSync(join(records, `${engine!.pid}.requests.jsonl`), 'utf8');
    expect(served).toContain('hello over http');
    // Liveness as locally: a frozen engine fails its readiness re-checks and leaves the rotation; it comes back.
    process.kill(engine!.pid, 'SIGSTOP');
    const out = await head.waitForEvent((e) => e.type === 'replica:unresponsive' && e.stage_id === 0, 30_000);
    process.kill(engine!.pid, 'SIGCONT');
    await head.waitForEvent((e) => e.type === 'replica:responsive' && e.ts > out.ts, 30_000);
    // A clean agent stop takes the replica out of the head's pool.
    agent.signal('SIGTERM');
    await head.waitForEvent((e) => e.type === 'replica:detached' && e['host_id'] === 'a', 30_000);
    expect((await agent.waitExit(30_000)).code).toBe(143);
    head.signal('SIGTERM');
    await head.waitExit(60_000);
  }, 240_000);
});
