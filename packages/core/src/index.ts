export { ERROR_CATALOGUE, OmniError, formatError, formatLocation, isOmniError, toOmniError } from './errors.js';
export type { ErrorCode, ErrorContext, OmniErrorOptions, SourceLocation } from './errors.js';
export { diagnostic } from './diagnostics.js';
export type { Diagnostic } from './diagnostics.js';
export { LocationIndex } from './config/location-index.js';
export { DEFAULT_RESTART_POLICY, createStageConfig } from './config/stage-defaults.js';
export type {
  ConnectorRef,
  ConnectorSpec,
  EdgeConfig,
  EngineArgs,
  PipelineConfig,
  PluginRef,
  RestartPolicy,
  StageConfig,
  StageRuntimeConfig,
} from './config/types.js';
export type {
  InitPlan,
  LaunchGroup,
  PlatformName,
  ReplicaPlan,
  StageMetadata,
  StagePlan,
  WorkerSpec,
} from './planning/types.js';
