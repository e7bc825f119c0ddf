import { AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook, HookMap, SyncHook } from 'tapable';
import type { EngineArgs, PipelineConfig } from '../config/types.js';
import type { InitPlan, StageMetadata, WorkerSpec } from '../planning/types.js';
import type { PlanContext, ReplicaContext, ReplicaRuntime } from './contexts.js';
import type { ReplicaConnection, ReplicaProcessHandle } from './replica-handles.js';

/** A held set of device init locks; released after attach (or on failure). */
export interface HeldDeviceLocks {
  readonly devices: readonly string[];
  release(): Promise<void>;
}

/**
 * The hooks of an {@link Omnistage}. Built once in the constructor and frozen: plugins tap them,
 * nobody replaces them. Per-stage-type hooks are `HookMap`s keyed by `stage_type`.
 *
 * What each hook is called with, what a tap may return and in which phase it runs: the hook table of
 * docs/plugins.md ("Hooks"), the one table of them (test/structure/hooks-documented.test.ts keeps
 * it in step with this interface).
 */
export interface OmniHooks {
  readonly validateConfig: AsyncSeriesHook<[PipelineConfig, PlanContext]>;
  readonly extractMetadata: HookMap<AsyncSeriesWaterfallHook<[StageMetadata, ReplicaContext]>>;
  readonly buildArgs: AsyncSeriesWaterfallHook<[EngineArgs, ReplicaContext]>;
  readonly resolveWorker: HookMap<AsyncSeriesBailHook<[ReplicaContext], WorkerSpec | undefined>>;
  readonly planned: SyncHook<[InitPlan]>;
  readonly lockDevices: AsyncSeriesBailHook<[ReplicaRuntime], HeldDeviceLocks | undefined>;
  readonly spawn: AsyncSeriesBailHook<[WorkerSpec, ReplicaRuntime], ReplicaProcessHandle | undefined>;
  readonly attach: AsyncSeriesBailHook<[ReplicaProcessHandle, ReplicaRuntime], ReplicaConnection | undefined>;
}

export function createHooks(): OmniHooks {
  return Object.freeze({
    validateConfig: new AsyncSeriesHook<[PipelineConfig, PlanContext]>(['config', 'ctx'], 'validateConfig'),
    extractMetadata: new HookMap(
      (type: string) =>
        new AsyncSeriesWaterfallHook<[StageMetadata, ReplicaContext]>(['metadata', 'ctx'], `extractMetadata(${type})`),
      'extractMetadata',
    ),
    buildArgs: new AsyncSeriesWaterfallHook<[EngineArgs, ReplicaContext]>(['engineArgs', 'ctx'], 'buildArgs'),
    resolveWorker: new HookMap(
      (type: string) =>
        new AsyncSeriesBailHook<[ReplicaContext], WorkerSpec | undefined>(['ctx'], `resolveWorker(${type})`),
      'resolveWorker',
    ),
    planned: new SyncHook<[InitPlan]>(['plan'], 'planned'),
    lockDevices: new AsyncSeriesBailHook<[ReplicaRuntime], HeldDeviceLocks | undefined>(['runtime'], 'lockDevices'),
    spawn: new AsyncSeriesBailHook<[WorkerSpec, ReplicaRuntime], ReplicaProcessHandle | undefined>(
      ['worker', 'runtime'],
      'spawn',
    ),
    attach: new AsyncSeriesBailHook<[ReplicaProcessHandle, ReplicaRuntime], ReplicaConnection | undefined>(
      ['process', 'runtime'],
      'attach',
    ),
  });
}
