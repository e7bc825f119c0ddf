/**
 * `@omnistage/core`: what an application or a plugin needs. Planning internals are in
 * `@omnistage/core/planning`, the runtime building blocks (locks, launcher, control protocol,
 * payload store) in `@omnistage/core/runtime`, test helpers in `@omnistage/core/testing`, the
 * worker SDK in `@omnistage/core/worker`.
 */

// Errors and diagnostics
export { CONFIG_LIMITS, PLAN_LIMITS } from './limits.js';
export { describeValue, invalidValue, unknownKey } from './error-messages.js';
export type { ValueProblem } from './error-messages.js';
export { ERROR_CATALOGUE, OmniError, formatError, formatLocation, isOmniError, toOmniError } from './errors.js';
export type { ErrorCode, ErrorContext, OmniErrorOptions, SourceLocation } from './errors.js';
export { diagnostic } from './diagnostics.js';
export type { Diagnostic } from './diagnostics.js';

// Configuration
export { INLINE_FILE, loadPipelineConfig } from './config/load-pipeline.js';
export type { LoadPipelineOptions, PipelineSource } from './config/load-pipeline.js';
export { pipelineJsonSchema } from './config/json-schema.js';
export type { EngineArgsSchemas } from './config/json-schema.js';
export type {
  PipelineDefinition,
  PipelineStageDefinition,
  PipelineVariant,
  StageProcessors,
} from './config/pipelines.js';
export type { TopLevel } from './config/build.js';
export type { ReadFile } from './config/load.js';
export { suggestions } from './config/did-you-mean.js';
export type { LocationIndex } from './config/location-index.js';
export type {
  ConnectorRef,
  ConnectorSpec,
  EdgeConfig,
  EngineArgs,
  PipelineConfig,
  PluginRef,
  ReplicaBalance,
  RestartPolicy,
  StageConfig,
  StageRuntimeConfig,
  LivenessConfig,
} from './config/types.js';

// Plans
export type {
  InitPlan,
  InputProcessor,
  InputProcessorContext,
  StageResult,
  LaunchGroup,
  PlatformName,
  ReplicaPlan,
  StageMetadata,
  StagePlan,
  TransferPlan,
  WorkerSpec,
} from './planning/types.js';
export { lockDeviceCount } from './planning/lock-devices.js';

// The orchestrator, plugins, hooks, events
export { Omnistage } from './omnistage.js';
export type { OmnistageOptions } from './omnistage.js';
export { defaultLockDir } from './locks/paths.js';
export { definePlugin } from './plugin.js';
export type { OmnistagePlugin } from './plugin.js';
export { ANY_STAGE_TYPE } from './plugins/definition-types.js';
export type {
  EdgeFlow,
  EngineArgsDeclaration,
  EngineArgsZodSchema,
  EngineDefinition,
  StageTypeDefinition,
} from './plugins/definition-types.js';
export type { PluginApi, PluginEvents } from './plugins/plugin-api.js';
export type { Definitions } from './plugins/definitions.js';
export { loadPlugins } from './plugin-loader.js';
export type { PluginFactoryContext, PluginRequest } from './plugin-loader.js';
export { CORE_VERSION } from './version.js';
export type { HeldDeviceLocks, OmniHooks } from './hooks/hooks.js';
export { STAGE_BUILTIN, STAGE_CONNECTOR, STAGE_TYPE, STAGE_USER } from './hooks/stages.js';
export type { PlanContext, PlanOptions, ReplicaContext, ReplicaRuntime, StageLayout } from './hooks/contexts.js';
export type {
  ReplicaConnection,
  ReplicaExit,
  ReplicaOutputChunk,
  ReplicaProcessHandle,
  ReplicaRequest,
} from './hooks/replica-handles.js';
export { EventBus } from './events/event-bus.js';
export { REPLICA_PHASES } from './events/types.js';
export type {
  OmniEvent,
  OmniEventOf,
  OmniEventPayload,
  OmniEventType,
  PlacedReplica,
  ReplicaPhase,
} from './events/types.js';
export { writeEventsAsJsonLines } from './events/json-lines-writer.js';

// Plan, bring up, serve, tear down
export { PLAN_ONLY_RUN_ID, planPipeline } from './pipeline/plan-pipeline.js';
export { bringUp } from './pipeline/bring-up.js';
export type { BringUpOptions } from './pipeline/bring-up.js';
export { RunningPipeline } from './orchestrate/running-pipeline.js';
export type { ReplicaDeathHandler, RunningPipelineOptions } from './orchestrate/running-pipeline.js';
export type { StartedReplica } from './orchestrate/started-replica.js';
export type { LivenessOptions } from './orchestrate/liveness.js';
export type { RunServices } from './orchestrate/run-services.js';
export { planToJson, planToTable } from './orchestrate/plan-json.js';
export { DEFAULT_MAX_INFLIGHT_PER_REPLICA, createRouter } from './orchestrate/router.js';
export { MAX_INFLIGHT_LIMIT } from './config/schema.js';
export type {
  BalancePolicy,
  GenerateOptions,
  PipelineOutput,
  PipelineRouter,
  RoutedPipeline,
  RouterOptions,
} from './orchestrate/router.js';
export { newRunId } from './orchestrate/run-id.js';
export { DEFAULT_INIT_TIMEOUT_S, DEFAULT_STAGE_INIT_TIMEOUT_S, DEFAULT_STOP_GRACE_MS } from './orchestrate/defaults.js';

// What an engine plugin needs at runtime
export { waitForHttpReady } from './control/http-readiness.js';
export type { HttpReadinessOptions } from './control/http-readiness.js';
export type { JsonObject, JsonValue } from './control/protocol.js';
export {
  DEFAULT_SHM_THRESHOLD,
  INLINE_CONNECTOR,
  SHM_CONNECTOR,
  connectorConfigOf,
  outputConnectorOf,
} from './connectors/connector-config.js';
export type { OutputConnector } from './connectors/connector-config.js';
export { inlinePayloadRef } from './connectors/payload-ref.js';
export type { PayloadMeta, PayloadOrigin, PayloadRef, PayloadVia } from './connectors/payload-ref.js';
export type {
  CreatePayloadConnector,
  PayloadConnector,
  PayloadConnectorContext,
  PayloadConnectorDefinition,
  PayloadConnectorRole,
  PayloadPutContext,
  RunConnector,
} from './connectors/payload-connector.js';
