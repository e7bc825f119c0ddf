// Errors and diagnostics
export { CONFIG_LIMITS, PLAN_LIMITS } from './limits.js';
export { describeValue, invalidValue, unknownKey } from './error-messages.js';
export type { ValueProblem } from './error-messages.js';
export { ERROR_CATALOGUE, OmniError, formatError, formatLocation, isOmniError, toOmniError } from './errors.js';
export type { ErrorCode, ErrorContext, OmniErrorOptions, SourceLocation } from './errors.js';
export { diagnostic } from './diagnostics.js';
export type { Diagnostic } from './diagnostics.js';

// Configuration
export { LocationIndex } from './config/location-index.js';
export { DEFAULT_RESTART_POLICY, createStageConfig } from './config/stage-defaults.js';
export { INLINE_FILE, loadPipelineConfig } from './config/load-pipeline.js';
export type { LoadPipelineOptions, PipelineSource } from './config/load-pipeline.js';
export { pipelineJsonSchema } from './config/json-schema.js';
export type { EngineArgsSchemas } from './config/json-schema.js';
export { BUILT_IN_PIPELINES, findPipeline } from './config/pipelines.js';
export type { PipelineStageTopology, PipelineTopology } from './config/pipelines.js';
export type { ReadFile } from './config/load.js';
export { STAGE_OVERRIDES_FILE } from './config/stage-overrides.js';
export { DEFAULT_MODE } from './config/modes.js';
export { didYouMean, editDistance, suggestions } from './config/did-you-mean.js';
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

// Planning (pure)
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
export { splitDevicesForReplicas } from './planning/split-devices.js';
export type { SplitDevicesOptions } from './planning/split-devices.js';
export { computeReplicaLayout } from './planning/replica-layout.js';
export type { ReplicaLayout, ReplicaLayoutOptions } from './planning/replica-layout.js';
export { CPU_DEFAULT_DEVICE_COUNT, PLATFORMS, resolveVisibleDevices } from './planning/platform.js';
export type { PlatformInfo, VisibleDevices } from './planning/platform.js';
export { mapLogicalDevices } from './planning/device-mapping.js';
export type { MappedDevices } from './planning/device-mapping.js';
export { lockDeviceCount, selectLockDevices } from './planning/lock-devices.js';
export type { SelectLockDevicesOptions } from './planning/lock-devices.js';
export { OMNISTAGE_ENV, stageRuntimeEnv } from './planning/runtime-env.js';
export type { StageRuntimeEnvOptions } from './planning/runtime-env.js';
export { extractStageMetadata } from './planning/stage-metadata.js';
export { launchGroupIds, launchGroups, replicaKey } from './planning/launch-groups.js';
export type { LaunchGroupMember } from './planning/launch-groups.js';
export { checkAdmission } from './planning/admission.js';
export type { AdmissionOptions, AdmissionReplica } from './planning/admission.js';
export { captureStageFactoryContexts } from './planning/stage-factory-context.js';
export type { FactoryContextStagePlan, StageRemoteFactoryContext } from './planning/stage-factory-context.js';
export { compareDeviceIds, sortDeviceIds, splitDeviceList, uniqueDeviceIds } from './planning/device-ids.js';

// The orchestrator, hooks, plugins, events
export { Omnistage } from './omnistage.js';
export { defaultLockDir } from './locks/paths.js';
export type { OmnistageOptions } from './omnistage.js';
export { definePlugin } from './plugin.js';
export type { OmnistagePlugin } from './plugin.js';
export { ANY_STAGE_TYPE } from './plugins/definition-types.js';
export type { EngineDefinition, StageTypeDefinition } from './plugins/definition-types.js';
export type { PluginApi, PluginEvents } from './plugins/plugin-api.js';
export { loadPlugins } from './plugin-loader.js';
export type { PluginFactoryContext, PluginRequest } from './plugin-loader.js';
export { CORE_VERSION, satisfiesRange } from './version.js';
export type { HeldDeviceLocks, OmniHooks } from './hooks/hooks.js';
export { STAGE_BUILTIN, STAGE_CONNECTOR, STAGE_TYPE, STAGE_USER } from './hooks/stages.js';
export type { PlanContext, PlanOptions, ReplicaContext, ReplicaRuntime, StageLayout } from './hooks/contexts.js';
export type { ReplicaConnection, ReplicaExit, ReplicaOutputChunk, ReplicaProcessHandle, ReplicaRequest } from './hooks/replica-handles.js';
export { EventBus } from './events/event-bus.js';
export { REPLICA_PHASES } from './events/types.js';
export type { OmniEvent, OmniEventOf, OmniEventPayload, OmniEventType, ReplicaPhase } from './events/types.js';
export { writeEventsAsJsonLines } from './events/json-lines-writer.js';

// Bring-up and teardown
export { PLAN_ONLY_RUN_ID, planPipeline } from './pipeline/plan-pipeline.js';
export { bringUp } from './pipeline/bring-up.js';
export type { BringUpOptions } from './pipeline/bring-up.js';
export { RunningPipeline } from './orchestrate/running-pipeline.js';
export type { ReplicaDeathHandler, StartedReplica } from './orchestrate/running-pipeline.js';
export { planToJson, planToTable } from './orchestrate/plan-json.js';
export { PipelineRouter } from './orchestrate/router.js';
export type { BalancePolicy, GenerateOptions, PipelineOutput, RouterOptions } from './orchestrate/router.js';
export { superviseRestarts } from './orchestrate/supervisor.js';
export { defaultInputProcessor, isJsProcessorSpecifier, loadInputProcessor } from './orchestrate/input-processor.js';
export { AsyncQueue } from './orchestrate/async-queue.js';
export { newRunId } from './orchestrate/run-id.js';
export { DEFAULT_INIT_TIMEOUT_S, DEFAULT_STAGE_INIT_TIMEOUT_S, DEFAULT_STOP_GRACE_MS } from './orchestrate/defaults.js';

// Runtime building blocks (locks, launcher, control protocol)
export { LOCK_OPTIONS, LOCK_POLL_MS } from './locks/options.js';
export { acquireDeviceLocks } from './locks/device-locks.js';
export type { AcquireDeviceLocksOptions, DeviceLockOwner, DeviceLockSet } from './locks/device-locks.js';
export { describeHolder, readLockHolder } from './locks/holder.js';
export type { LockHolder } from './locks/holder.js';
export { LOCK_DIR_ENV } from './locks/paths.js';
export { launchProcess } from './launch/launch-process.js';
export type { LaunchOptions, LaunchedProcess, OutputStream } from './launch/launch-process.js';
export { setprivPath } from './launch/setpriv.js';
export { CONTROL_ENV, PROTOCOL_VERSION, controlEnv, encodeMessage, parseOrchestratorMessage, parseWorkerMessage } from './control/protocol.js';
export type { ControlMessage, JsonObject, JsonValue, OrchestratorMessage, WorkerMessage } from './control/protocol.js';
export { ControlServer } from './control/server.js';
export type { ControlServerOptions } from './control/server.js';
export { ReplicaChannel } from './control/replica-channel.js';
export type { ChannelClose, ExpectOptions } from './control/replica-channel.js';
export { createControlToken } from './control/token.js';
export { waitForHttpReady } from './control/http-readiness.js';
export type { HttpReadinessOptions } from './control/http-readiness.js';

// Connectors (payloads between stages)
export {
  PAYLOAD_MARK,
  findPayloadRefs,
  inlinePayloadRef,
  isConnectorClassName,
  isPayloadRef,
  isStoredPayload,
  isValidPayloadKey,
  mapPayloadRefs,
} from './connectors/payload-ref.js';
export type { PayloadMeta, PayloadRef, PayloadVia } from './connectors/payload-ref.js';
export {
  PAYLOAD_DIR_ENV,
  SHM_MAP_ENV,
  deletePayload,
  listRunPayloads,
  payloadDir,
  payloadFileName,
  payloadPath,
  payloadReadPath,
  readPayload,
  sweepRunPayloads,
  writePayload,
} from './connectors/shm-store.js';
export { DEFAULT_SHM_THRESHOLD, INLINE_CONNECTOR, INLINE_MAX_BYTES, SHM_CONNECTOR, connectorConfigOf, outputConnectorOf } from './connectors/connector-config.js';
export type { OutputConnector } from './connectors/connector-config.js';
export { createPayloadConnectorInstance } from './connectors/payload-connector.js';
export type {
  CreatePayloadConnector,
  PayloadConnector,
  PayloadConnectorContext,
  PayloadConnectorDefinition,
  PayloadConnectorRole,
  PayloadPutContext,
  RunConnector,
} from './connectors/payload-connector.js';
export { PayloadTracker, USER_HOLDER, stageHolder } from './connectors/payload-tracker.js';
export type { PayloadEvent, PayloadFreeReason, PayloadTrackerOptions } from './connectors/payload-tracker.js';
export { RouterPayloads } from './connectors/router-payloads.js';
