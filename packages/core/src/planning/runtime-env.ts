import type { StageConfig } from '../config/types.js';
import { CONTROL_ENV } from '../control/protocol.js';
import { PLATFORMS } from './platform.js';
import type { PlatformName } from './types.js';

/** Input of {@link stageRuntimeEnv}. */
export interface StageRuntimeEnvOptions {
  stage: StageConfig;
  replicaId: number;
  platform: PlatformName;
  /** The replica's physical devices; null or empty = inherit the launcher's visibility (no var written). */
  physicalDevices: readonly string[] | null;
  runId: string;
}

/**
 * The environment additions for one replica's child process (what upstream's
 * `stage_runtime_env` and `setup_stage_devices` write into the process-global environment around
 * each spawn, computed per child here instead, so no launch mutex is needed):
 * `runtime.env`, then the platform's device var(s) set to the physical ids joined by `,` (ROCm: both
 * variables), then `OMNISTAGE_RUN_ID` / `OMNISTAGE_STAGE_ID` (configured id) / `OMNISTAGE_REPLICA_ID`.
 * The launcher spreads it over its own environment; `process.env` is never read or written.
 *
 * Later entries win: upstream applies `runtime.env` first and sets the devices inside that scope,
 * so a `CUDA_VISIBLE_DEVICES` in `runtime.env` is overridden by the planned devices; the identity
 * variables are ours and cannot be overridden either.
 */
export function stageRuntimeEnv(options: StageRuntimeEnvOptions): Record<string, string> {
  const { stage, replicaId, platform, physicalDevices, runId } = options;
  // Spread, not assignment: a key such as `__proto__` in runtime.env stays a plain env entry.
  const env: Record<string, string> = { ...stage.runtime.env };
  if (physicalDevices !== null && physicalDevices.length > 0) {
    const value = physicalDevices.join(',');
    for (const name of PLATFORMS[platform].deviceEnv) env[name] = value;
  }
  env[CONTROL_ENV.runId] = runId;
  env[CONTROL_ENV.stageId] = String(stage.stage_id);
  env[CONTROL_ENV.replicaId] = String(replicaId);
  return env;
}
