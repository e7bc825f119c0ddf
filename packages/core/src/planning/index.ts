/**
 * `@omnistage/core/planning`: the pure planning steps `planPipeline` composes (replica layout,
 * device split and mapping, per-child env, lock sets, launch groups, admission), the pipeline
 * registry and lookup rule and config helpers — for tools that plan differently or inspect a plan.
 */
export { splitDevicesForReplicas } from './split-devices.js';
export type { SplitDevicesOptions } from './split-devices.js';
export { computeReplicaLayout } from './replica-layout.js';
export type { ReplicaLayout, ReplicaLayoutOptions } from './replica-layout.js';
export { CPU_DEFAULT_DEVICE_COUNT, PLATFORMS, resolveVisibleDevices } from './platform.js';
export type { PlatformInfo, VisibleDevices } from './platform.js';
export { mapLogicalDevices } from './device-mapping.js';
export type { MappedDevices } from './device-mapping.js';
export { lockDeviceCount, selectLockDevices } from './lock-devices.js';
export type { SelectLockDevicesOptions } from './lock-devices.js';
export { stageRuntimeEnv } from './runtime-env.js';
export type { StageRuntimeEnvOptions } from './runtime-env.js';
export { extractStageMetadata } from './stage-metadata.js';
export { launchGroupIds, launchGroups, replicaKey } from './launch-groups.js';
export type { LaunchGroupMember } from './launch-groups.js';
export { checkAdmission } from './admission.js';
export type { AdmissionOptions, AdmissionReplica } from './admission.js';
export { captureStageFactoryContexts } from './stage-factory-context.js';
export type { FactoryContextStagePlan, StageRemoteFactoryContext } from './stage-factory-context.js';
export { compareDeviceIds, sortDeviceIds, splitDeviceList, uniqueDeviceIds } from './device-ids.js';
export { PipelineRegistry } from '../config/pipelines.js';
export { choosePipeline } from '../config/pipeline-lookup.js';
export type { PipelineChoice, PipelineLookupInput, PipelineSelection } from '../config/pipeline-lookup.js';
export { STAGE_OVERRIDES_FILE } from '../config/stage-overrides.js';
export { DEFAULT_MODE } from '../config/modes.js';
export { DEFAULT_RESTART_POLICY } from '../config/stage-defaults.js';
export { didYouMean, editDistance, suggestions } from '../config/did-you-mean.js';
export { defaultInputProcessor, isJsProcessorSpecifier, loadInputProcessor } from '../orchestrate/input-processor.js';
