import type { Logger } from 'pino';
import { OmniError, toOmniError } from '../errors.js';
import { controlEnv } from '../control/protocol.js';
import { tlsEnv, type TlsFiles, type TlsMaterial } from '../control/tls-material.js';
import { PAYLOAD_DIR_ENV, removeRunPayloadDir } from '../connectors/shm-store.js';
import { createHostPayloadDir, reapHostPayloadDirs } from './host-payload-dir.js';
import { PayloadServer } from './payload-server.js';
import type { OutputStream } from '../launch/launch-process.js';
import type { ReplicaProcessHandle } from '../hooks/replica-handles.js';
import { DEFAULT_STAGE_INIT_TIMEOUT_S, DEFAULT_STOP_GRACE_MS } from '../orchestrate/defaults.js';
import type { InitPlan, ReplicaPlan } from '../planning/types.js';
import { PLAN_LIMITS } from '../limits.js';
import { deriveReplicaToken, insecureSecret } from './cluster-token.js';
import { fingerprintDifferences } from './config-fingerprint.js';
import { startReplica } from '../pipeline/start-replica.js';
import type { ReplicaHost, StartDriver } from '../pipeline/replica-host.js';
import { agentHost, type AgentStart } from './agent-host.js';
import { RespawnBackoff } from './respawn-backoff.js';
import type { Discovery, HeadRecord, Registration, ReplicaRecord } from './discovery.js';
import type { Launcher } from './launcher.js';
import { describeExit, replicaLabel } from '../error-messages.js';

/** What an agent serves and where it finds its head. */
export interface AgentOptions {
  discovery: Discovery;
  /** The cluster secret (null: the insecure per-run secret, loopback or --insecure only). */
  secret: Buffer | null;
  hostId: string;
  /** Stage ids whose replicas this host runs, and how many of each. */
  stages: readonly number[];
  replicas: number;
  launcher: Launcher;
  /** Hooks, events and this host's lock dir (`--lock-dir`): replicas start through the same sequence as locally, every plugin tap included. */
  driver: StartDriver;
  /** This host's address (`--advertise`): its replicas dial the head from it and bind their ports on it; published in etcd. */
  address?: string;
  /** Seconds one replica may spend in lock + spawn + attach (default 300). */
  stageInitTimeoutS?: number;
  fingerprint: unknown;
  configHash: string;
  /** Plans the pipeline on this host's devices, under the head's run id. */
  plan(runId: string): Promise<InitPlan>;
  ttlS: number;
  /** Mutual TLS to the head's control port: the replicas get these paths (never the key itself) in their env. */
  tls?: TlsFiles;
  /** The same files, read: this host's payload server presents the certificate (it must allow serverAuth). */
  tlsMaterial?: TlsMaterial;
  /** Port of this host's payload server (0 or absent: any free one). */
  payloadPort?: number;
  /** A run id, or the newest head. */
  runId?: string;
  /** How long to wait for a head to appear (default 30 s). */
  waitForHeadMs?: number;
  /** Grace between SIGTERM and SIGKILL when stopping a replica (default 5000 ms, as a local bring-up's `stopGraceMs`). */
  stopGraceMs?: number;
  logger: Logger;
  onLine?(replica: { stage_id: number; replica_id: number }, stream: OutputStream, line: string): void;
}

/** How often a slot looks again for a head that went away (it stops everything after the TTL). */
const HEAD_POLL_MS = 250;

/** How one incarnation of a slot ended. */
type SlotOutcome = { failed: false } | { failed: true; why: string; attachedMs: number; lastLines: string[] };

/** Replicas that dial TLS to a plain port, or plain TCP to a TLS one, would only be refused: say so once, here. */
function checkTlsAgrees(head: HeadRecord, agentHasTls: boolean): void {
  if (head.tls === true && !agentHasTls) {
    throw new OmniError(
      'OMNI_CLUSTER',
      `the head of run ${head.run_id} accepts replicas over mutual TLS only, and this agent has no client certificate`,
      {
        hint: "give the agent --tls-cert, --tls-key (a client certificate signed by the CA the head trusts) and --tls-ca (the CA of the head's certificate)",
      },
    );
  }
  if (head.tls !== true && agentHasTls) {
    throw new OmniError(
      'OMNI_CLUSTER',
      `the head of run ${head.run_id} does not use TLS on its control port, but this agent was given --tls-* files`,
      {
        hint: 'start the head with --tls-cert, --tls-key and --tls-ca too, or drop them from the agent',
      },
    );
  }
}

/**
 * The headless launcher of one host: finds the head in discovery, refuses to serve another
 * pipeline, claims replica ids under its lease (the lowest free one, so a restarted host gets its
 * ids back), starts the replicas, which dial the head, and restarts them when they exit. A lost
 * lease means a new lease and new incarnations; a head gone for longer than the TTL stops
 * everything. {@link Agent.done} settles when the agent has stopped.
 */
export class Agent {
  readonly #o: AgentOptions;
  readonly #stop = new AbortController();
  #head!: HeadRecord;
  #plan!: InitPlan;
  #registration: Registration | null = null;
  readonly #claimed = new Map<string, { stage_id: number; replica_id: number; incarnation: string }>();
  #failure: OmniError | null = null;
  #unwatchHead: (() => Promise<void>) | null = null;
  #headGone: NodeJS.Timeout | undefined;
  #headPresent = true;
  /** This host's payload directory of the run, and the server that serves it to other hosts. */
  #payloadDir = '';
  #payloadServer: PayloadServer | null = null;
  /** Slots (`stage/slot`) whose replica failed more times in a row than its stage's restart budget: not started again. */
  readonly #givenUp = new Set<string>();
  /** Settles when the agent stopped: resolves after {@link Agent.stop}, rejects when the head went away or the agent failed. */
  done!: Promise<void>;

  private constructor(options: AgentOptions) {
    this.#o = options;
  }

  /** Connects to the head (checking the pipeline is the same) and starts serving; resolves once replicas are being started. */
  static async start(options: AgentOptions): Promise<Agent> {
    const agent = new Agent(options);
    await agent.#join();
    await agent.#servePayloads();
    agent.done = agent.#serve();
    agent.done.catch(() => undefined);
    return agent;
  }

  /** The head this agent serves. */
  get head(): HeadRecord {
    return this.#head;
  }

  async #join(): Promise<void> {
    const { discovery, runId } = this.#o;
    const deadline = Date.now() + (this.#o.waitForHeadMs ?? 30_000);
    let found = await discovery.readHead(runId);
    while (found === null) {
      if (Date.now() > deadline) {
        throw new OmniError(
          'OMNI_CLUSTER',
          `no head ${runId === undefined ? '' : `for run ${runId} `}is published in etcd`,
          {
            hint: 'start `omnistage serve FILE --head --etcd URL` first, or check --run and --etcd',
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      found = await discovery.readHead(runId);
    }
    this.#head = found.head;
    if (found.head.config_hash !== this.#o.configHash) {
      const diff = fingerprintDifferences(found.fingerprint, this.#o.fingerprint);
      throw new OmniError(
        'OMNI_CLUSTER',
        `this agent's pipeline differs from the head's (run ${found.head.run_id}): ${diff.join('; ') || 'the config hashes differ'}`,
        {
          hint: 'give the agent the same pipeline file as the head (devices and env may differ; stages, engines and engine_args may not)',
        },
      );
    }
    checkTlsAgrees(found.head, this.#o.tls !== undefined);
    this.#plan = await this.#o.plan(found.head.run_id);
    for (const stageId of this.#o.stages) {
      const stage = this.#plan.stages.find((s) => s.stage_id === stageId);
      if (stage === undefined) {
        throw new OmniError('OMNI_USAGE', `--stages names stage ${stageId}, which the pipeline does not have`, {
          hint: `stage ids: ${this.#plan.stages.map((s) => s.stage_id).join(', ')}`,
        });
      }
      // An HTTP engine is reached where it binds: on this host's --advertise address, never its loopback.
      if (stage.template.worker.attach === 'http' && this.#o.address === undefined) {
        throw new OmniError(
          'OMNI_USAGE',
          `stage ${stageId}'s engine is reached over HTTP, and the head can only reach it at this host's address`,
          {
            hint: 'give the agent --advertise ADDR (an address of this host the head can reach): the engine binds there',
          },
        );
      }
    }
    this.#unwatchHead = await discovery.watchHead(found.head.run_id, (present) => this.#onHead(present));
  }

  #onHead(present: boolean): void {
    clearTimeout(this.#headGone);
    this.#headPresent = present;
    if (present) return;
    // A head restarting within the TTL is not a dead head; one gone longer is, and its GPUs must not stay busy.
    this.#headGone = setTimeout(() => {
      this.#failure ??= new OmniError(
        'OMNI_CLUSTER',
        `the head of run ${this.#head.run_id} has been gone for more than ${this.#o.ttlS} s: this agent stopped its replicas`,
        {
          hint: 'restart the head, then the agents',
        },
      );
      this.#stop.abort();
    }, this.#o.ttlS * 1000);
  }

  /** Sessions of one lease each, until stopped: a lost lease starts a new session with new incarnations. */
  async #serve(): Promise<void> {
    try {
      while (!this.#stop.signal.aborted) {
        const reg = await this.#o.discovery.register(this.#o.ttlS);
        this.#registration = reg;
        await this.#o.discovery.publishHost(reg, this.#head.run_id, this.#o.hostId, {
          stages: this.#o.stages,
          ...this.#addressField(),
        });
        const session = new AbortController();
        const onStop = (): void => session.abort();
        this.#stop.signal.addEventListener('abort', onStop, { once: true });
        const slots = this.#o.stages.flatMap((stageId) =>
          Array.from({ length: this.#o.replicas }, (_, slot) => slot)
            .filter((slot) => !this.#givenUp.has(`${stageId}/${slot}`))
            .map((slot) => this.#slot(reg, stageId, slot, session.signal)),
        );
        const lost = await Promise.race([
          reg.lost,
          new Promise<null>((resolve) => session.signal.addEventListener('abort', () => resolve(null), { once: true })),
        ]);
        if (lost !== null)
          this.#o.logger.warn(
            { code: 'OMNI_WARN_LEASE_LOST' },
            `this agent's etcd lease was lost (${lost.message}): registering again with a new lease; the head fences the old connections`,
          );
        session.abort();
        this.#stop.signal.removeEventListener('abort', onStop);
        await Promise.all(slots);
      }
    } finally {
      clearTimeout(this.#headGone);
      await this.#unwatchHead?.();
      await this.#registration?.revoke();
      await this.#payloadServer?.close();
      if (this.#payloadDir !== '') removeRunPayloadDir(this.#payloadDir);
    }
    if (this.#failure) throw this.#failure;
  }

  /**
   * This host's payloads: a private directory (a dead predecessor's, same host id, reaped first)
   * and the server that hands them to consumers on other hosts (docs/scale-out.md).
   */
  async #servePayloads(): Promise<void> {
    const run = this.#head.run_id;
    const reaped = reapHostPayloadDirs(run, this.#o.hostId);
    if (reaped > 0)
      this.#o.logger.info(
        `reaped ${reaped} payload director${reaped === 1 ? 'y' : 'ies'} a previous agent of host ${this.#o.hostId} left`,
      );
    this.#payloadDir = createHostPayloadDir(run, this.#o.hostId);
    this.#payloadServer = await PayloadServer.start(
      {
        runId: run,
        dir: this.#payloadDir,
        secret: this.#o.secret ?? insecureSecret(run),
        host: this.#o.address ?? '127.0.0.1',
        port: this.#o.payloadPort ?? 0,
        ...(this.#o.tlsMaterial === undefined ? {} : { tls: this.#o.tlsMaterial }),
        warn: (m) => this.#o.logger.warn({ code: 'OMNI_WARN_PAYLOAD_SERVER' }, m),
      },
      this.#o.address,
    ).catch(async (err: unknown) => {
      removeRunPayloadDir(this.#payloadDir);
      await this.#unwatchHead?.();
      throw err;
    });
  }

  /** Where this host's payload server listens (`tcp://HOST:PORT`). */
  get payloadUrl(): string {
    return this.#payloadServer?.url ?? '';
  }

  #addressField(): { address?: string } {
    return this.#o.address === undefined ? {} : { address: this.#o.address };
  }

  /** One replica slot (this host's planned replica `slot` of the stage): claim an id, start the replica, wait for its exit, release the id, again (backing off while it fails). */
  async #slot(reg: Registration, stageId: number, slot: number, signal: AbortSignal): Promise<void> {
    const run_id = this.#head.run_id;
    const backoff = new RespawnBackoff(this.#stageOf(stageId).stage.runtime.restart, (this.#o.ttlS + 1) * 1000);
    let n = 0;
    while (!signal.aborted) {
      const incarnation = `${reg.id}.${stageId}.${n++}.${Date.now().toString(36)}`;
      const claim: Omit<ReplicaRecord, 'replica_id'> = {
        stage_id: stageId,
        host_id: this.#o.hostId,
        incarnation,
        state: 'running',
        since: Date.now(),
        ...this.#addressField(),
        payloads: this.#payloadServer!.url,
      };
      let replicaId: number;
      try {
        replicaId = await this.#o.discovery.claimReplica(reg, run_id, claim, PLAN_LIMITS.maxReplicas);
      } catch (err) {
        if (signal.aborted) return;
        this.#o.logger.error(`stage ${stageId}: claiming a replica id failed: ${toOmniError(err).message}`);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        continue;
      }
      const slotKey = `${stageId}/${replicaId}`;
      this.#claimed.set(slotKey, { stage_id: stageId, replica_id: replicaId, incarnation });
      const outcome = await this.#runReplica(reg, { ...claim, replica_id: replicaId }, slot, signal);
      this.#claimed.delete(slotKey);
      await this.#o.discovery.releaseReplica(run_id, stageId, replicaId, incarnation).catch(() => undefined);
      // An exit while the head is away is the head's doing, not the replica's: it does not count against the budget.
      if (outcome.failed && this.#headPresent && !signal.aborted) {
        backoff.record(true, outcome.attachedMs);
        if (backoff.exhausted) return this.#giveUp(stageId, slot, replicaId, outcome, backoff.failures);
      } else backoff.record(false, 0);
      if (!signal.aborted)
        this.#o.logger.warn(
          { code: 'OMNI_WARN_REPLICA_RESTARTING' },
          `${replicaLabel({ stage_id: stageId, replica_id: replicaId })}: starting it again in ${backoff.delayMs()} ms`,
        );
      await abortableDelay(backoff.delayMs(), signal);
      // While the head is away there is nobody to dial: wait for it (or for the TTL to stop everything).
      while (!this.#headPresent && !signal.aborted) await abortableDelay(HEAD_POLL_MS, signal);
    }
  }

  get #stopGraceMs(): number {
    return this.#o.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  }

  #stageOf(stageId: number): InitPlan['stages'][number] {
    return this.#plan.stages.find((s) => s.stage_id === stageId)!;
  }

  /** A crash-looping slot stops here; when no slot is left, the agent has nothing to offer and fails. */
  #giveUp(
    stageId: number,
    slot: number,
    replicaId: number,
    outcome: Extract<SlotOutcome, { failed: true }>,
    failures: number,
  ): void {
    this.#givenUp.add(`${stageId}/${slot}`);
    const error = new OmniError(
      'OMNI_WORKER_EXITED',
      `${replicaLabel({ stage_id: stageId, replica_id: replicaId })} on host ${this.#o.hostId} failed ${failures} times in a row (last: ${outcome.why}): this agent stopped restarting it`,
      {
        context: {
          stage_id: stageId,
          replica_id: replicaId,
          host_id: this.#o.hostId,
          last_lines: outcome.lastLines.slice(-10),
        },
        hint: "fix what the replica's last lines say, then restart the agent; runtime.restart.max_restarts sets how many failures in a row an agent tolerates",
      },
    );
    this.#o.logger.error(error.message);
    if (this.#givenUp.size >= this.#o.stages.length * this.#o.replicas) {
      this.#failure ??= error;
      this.#stop.abort();
    }
  }

  /** This host's plan of a slot (devices, env, lock set), under the replica id claimed in discovery. */
  #replicaOf(stageId: number, slot: number, replicaId: number): ReplicaPlan {
    const stage = this.#stageOf(stageId);
    const planned: ReplicaPlan = stage.replicas[slot] ?? stage.template;
    // Init windows need the head's channel: on an agent every replica loads alone, so its worker declares none.
    const { phases: _phases, ...worker } = planned.worker;
    return { ...planned, replica_id: replicaId, metadata: { ...planned.metadata, replica_id: replicaId }, worker };
  }

  /** The agent as the host of one incarnation: the env that dials the head with its token, its launcher, the head's mark. */
  #hostOf(reg: Registration, claimed: ReplicaRecord, onLine: AgentStart['onLine']): ReplicaHost<ReplicaProcessHandle> {
    const run_id = this.#head.run_id;
    const { stage_id, replica_id, incarnation } = claimed;
    const secret = this.#o.secret ?? insecureSecret(run_id);
    const token = deriveReplicaToken(secret, { run_id, stage_id, replica_id, incarnation });
    const hostAddress = this.#o.address === undefined ? {} : { hostAddress: this.#o.address };
    const env = {
      ...controlEnv({ socketPath: this.#head.control, token, stage_id, replica_id, run_id, ...hostAddress }),
      ...(this.#o.tls ? tlsEnv(this.#o.tls) : {}),
      [PAYLOAD_DIR_ENV]: this.#payloadDir,
    };
    return agentHost({
      runId: run_id,
      plan: this.#plan,
      head: this.#head.control,
      env,
      launcher: this.#o.launcher,
      stopGraceMs: this.#stopGraceMs,
      attached: (signal) => this.#o.discovery.waitAttached(run_id, stage_id, replica_id, incarnation, signal),
      advertiseHttp: async (readiness_url, pid) => {
        const updated = await this.#o.discovery.updateReplica(reg, run_id, { ...claimed, readiness_url, pid });
        if (!updated)
          throw new OmniError(
            'OMNI_CLUSTER',
            `${replicaLabel(claimed)}: its replica key went before it was advertised`,
            {
              hint: "the agent's lease was lost or a newer incarnation took the id; it starts again",
            },
          );
      },
      onSpawned: (launched) =>
        this.#o.logger.info(
          `${replicaLabel(claimed)}: started (pid ${launched.pid}, incarnation ${incarnation}), dialling the head at ${this.#head.control}`,
        ),
      onLine,
    });
  }

  /** Starts the replica through the one start sequence (host locks, launcher, the head's attach), then waits for its exit. */
  async #runReplica(
    reg: Registration,
    claimed: ReplicaRecord,
    slot: number,
    signal: AbortSignal,
  ): Promise<SlotOutcome> {
    const { stage_id, replica_id } = claimed;
    const label = replicaLabel(claimed);
    const onLine = (stream: OutputStream, line: string): void =>
      this.#o.onLine
        ? this.#o.onLine({ stage_id, replica_id }, stream, line)
        : this.#o.logger.info({ stream, stage: stage_id, replica: replica_id }, line);
    let proc: ReplicaProcessHandle;
    try {
      proc = await startReplica(
        this.#o.driver,
        this.#hostOf(reg, claimed, onLine),
        this.#replicaOf(stage_id, slot, replica_id),
        {
          signal,
          deadline: Date.now() + (this.#o.stageInitTimeoutS ?? DEFAULT_STAGE_INIT_TIMEOUT_S) * 1000,
        },
      );
    } catch (err) {
      const error = toOmniError(err);
      if (signal.aborted) return { failed: false };
      this.#o.logger.error(error.message);
      const lines = error.context?.['last_lines'];
      return {
        failed: true,
        why: error.message,
        attachedMs: 0,
        lastLines: Array.isArray(lines) ? lines.map(String) : [],
      };
    }
    const attachedAt = Date.now();
    const onAbort = (): void => void proc.stop(this.#stopGraceMs);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    const exit = await proc.exited;
    signal.removeEventListener('abort', onAbort);
    if (signal.aborted) return { failed: false };
    const why = `pid ${proc.pid} exited (${describeExit(exit)})`;
    this.#o.logger.warn({ code: 'OMNI_WARN_REPLICA_EXITED' }, `${label}: ${why}`);
    return { failed: true, why, attachedMs: Date.now() - attachedAt, lastLines: proc.lastLines() };
  }

  /** Clean shutdown: tells the head its replicas leave, stops them, revokes the lease. Idempotent. */
  async stop(): Promise<void> {
    const reg = this.#registration;
    if (reg !== null && !this.#stop.signal.aborted) {
      await Promise.all(
        [...this.#claimed.values()].map((c) =>
          this.#o.discovery
            .updateReplica(reg, this.#head.run_id, {
              ...c,
              host_id: this.#o.hostId,
              state: 'leaving',
              since: Date.now(),
            })
            .catch(() => false),
        ),
      );
    }
    this.#stop.abort();
    await this.done.catch(() => undefined);
  }
}

/** Waits `ms`, or less when `signal` aborts first. */
function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
