import type { Logger } from 'pino';
import type { Diagnostic } from '../diagnostics.js';
import type { EngineArgs, PipelineConfig, StageConfig } from '../config/types.js';
import type { EventBus } from '../events/event-bus.js';
import type { PlatformName, ReplicaPlan, StageMetadata, StagePlan } from '../planning/types.js';

/** Options that shape a plan. Everything a plan depends on is here or in the config. */
export interface PlanOptions {
  /** Default `cuda`. `cpu` plans on virtual devices (`OMNISTAGE_VISIBLE_DEVICES`, default 0..7). */
  platform?: PlatformName;
  /** `--engine`: overrides every stage's engine (e.g. `reference` to dry-run an upstream file). */
  engine?: string;
  /** `--model`: the model id or path (`vllm serve <model>`); wins over the file's `model:`. */
  model?: string;
  /** Turn device over-commit from a plan error into a warning. */
  allowOvercommit?: boolean;
  /** Fraction of each device kept free by admission (default 0). */
  memoryReserve?: number;
  /** The launcher environment the plan is computed for (default `process.env`; never mutated). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Devices found on the machine when the platform's device variable is unset. */
  detectedDeviceCount?: number;
  /**
   * The run the plan is for (written into each replica's env and carried by the plan). Default: a
   * fresh id when `purpose` is `launch`, a placeholder when only planning.
   */
  runId?: string;
  /** `--no-inline`: never run an engine inside the orchestrator. */
  noInline?: boolean;
  /**
   * `launch` when the plan will be brought up. A plan that is only printed tolerates what only
   * matters at launch (e.g. no model given yet), as warnings.
   */
  purpose?: 'plan' | 'launch';
  /**
   * Scale-out agent: the stages this host runs. Memory admission counts only their replicas (the
   * other stages run on other hosts). Default: every stage.
   */
  hostStages?: readonly number[];
  /**
   * Keep `runtime.num_replicas: 0` as no replica instead of one (a stage that agents fill): the
   * stage still gets its template replica, planned but not started. Default false.
   */
  allowZeroReplicas?: boolean;
  /** The address replicas bind their ports on (an agent's `--advertise`; default 127.0.0.1). Engines read it. */
  hostAddress?: string;
}

/** Shared by every planning hook call of one plan. */
export interface PlanContext {
  readonly config: PipelineConfig;
  readonly platform: PlatformName;
  readonly visibleDevices: readonly string[];
  readonly options: Readonly<PlanOptions>;
  readonly runId: string;
  /** The model the pipeline serves (`--model` or the file's `model:`), or null. */
  readonly model: string | null;
  readonly logger: Logger;
  /**
   * Adds a plan warning (shown by `plan`, `validate`, `up`, `run` and `serve`): a string becomes an
   * `OMNI_WARN_PLUGIN` warning with that text; `diagnostic(code, message, location?, hint?)` gives
   * a catalogued code, a `file:line:col` and a hint.
   */
  warn(warning: Diagnostic | string): void;
}

/** One stage as the plan lays it out (known before any replica is planned). */
export interface StageLayout {
  readonly stage_id: number;
  readonly num_replicas: number;
}

/** One replica while it is being planned (phases metadata → args → worker). */
export interface ReplicaContext {
  readonly plan: PlanContext;
  /** Every stage's replica count, as planned: plugins read it here instead of re-planning. */
  readonly layout: readonly StageLayout[];
  /** This replica's stage config (replicas ≥ 1 get a copy with their device slice). */
  readonly stage: StageConfig;
  readonly replicaId: number;
  readonly numReplicas: number;
  /** The engine that will run this replica (`--engine` > stage `engine:` > stage type default). */
  readonly engine: string;
  /** This replica's logical devices, or null when it inherits every visible device. */
  readonly devices: string | null;
  /** Physical ids, or null when it inherits every visible device. */
  readonly physicalDevices: readonly string[] | null;
  /** Environment additions for this replica's process. Plugins may add keys; never `process.env`. */
  readonly env: Record<string, string>;
  metadata: StageMetadata;
  engineArgs: EngineArgs;
}

/** One replica while it is being brought up (phases lock → spawn → attach). */
export interface ReplicaRuntime {
  readonly replica: ReplicaPlan;
  /** The replica's stage: its config, engine and what its replicas share. */
  readonly stage: StagePlan;
  readonly runId: string;
  /** Private directory of this run (control socket, payload files); removed at teardown. */
  readonly runDir: string;
  readonly lockDir: string;
  /** Aborted when the replica's or the pipeline's deadline passes or the bring-up is cancelled. */
  readonly signal: AbortSignal;
  /** Epoch ms by which lock + spawn + attach must be done. */
  readonly deadline: number;
  readonly logger: Logger;
  readonly events: EventBus;
  /**
   * Says what the running tap waits for (e.g. `ready`) and, optionally, in words (`http://…/v1/models
   * did not answer 200 yet`): a deadline, a cancel or the process exiting then names it.
   */
  progress(step: string, detail?: string): void;
  /** Where the replica's output lines go (a spawn tap forwards its process's lines here). */
  onLine(stream: 'stdout' | 'stderr', line: string): void;
  /** Fails this replica now (e.g. a device lock it holds was lost); its signal aborts with `err`. */
  fail(err: Error): void;
}
