/**
 * `@omnistage/core/runtime`: the building blocks a bring-up is made of — device locks, the process
 * launcher, the control protocol and its server, the shared-memory payload store and the payload
 * book — for launchers, benchmarks and tools that drive replicas themselves; and the phrases
 * their messages share (a replica's label, a process exit, a cancellation), one spelling each.
 */
export { LOCK_OPTIONS, LOCK_POLL_MS } from '../locks/options.js';
export { acquireDeviceLocks } from '../locks/device-locks.js';
export type { AcquireDeviceLocksOptions, DeviceLockOwner, DeviceLockSet } from '../locks/device-locks.js';
export { describeHolder, readLockHolder } from '../locks/holder.js';
export type { LockHolder } from '../locks/holder.js';
export { LOCK_DIR_ENV } from '../locks/paths.js';
export { launchProcess } from '../launch/launch-process.js';
export type { LaunchOptions, LaunchedProcess, OutputStream } from '../launch/launch-process.js';
export { setprivPath } from '../launch/setpriv.js';
export { atProcessExit } from '../process/exit-tasks.js';
export {
  CONTROL_ENV,
  PROTOCOL_VERSION,
  controlEnv,
  encodeMessage,
  parseOrchestratorMessage,
  parseWorkerMessage,
} from '../control/protocol.js';
export type { ControlMessage, OrchestratorMessage, WorkerMessage } from '../control/protocol.js';
export { ControlServer } from '../control/server.js';
export type { ControlServerOptions } from '../control/server.js';
export { ReplicaChannel } from '../control/replica-channel.js';
export type { ChannelClose, ExpectOptions } from '../control/replica-channel.js';
export { createControlToken } from '../control/token.js';
export {
  PAYLOAD_MARK,
  findPayloadRefs,
  inlinePayloadRef,
  isConnectorClassName,
  isPayloadRef,
  isStoredPayload,
  isValidPayloadKey,
  mapPayloadRefs,
} from '../connectors/payload-ref.js';
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
} from '../connectors/shm-store.js';
export { INLINE_MAX_BYTES } from '../connectors/connector-config.js';
export { createPayloadConnectorInstance } from '../connectors/payload-connector.js';
export { PayloadTracker, USER_HOLDER, stageHolder } from '../connectors/payload-tracker.js';
export type { PayloadEvent, PayloadFreeReason, PayloadTrackerOptions } from '../connectors/payload-tracker.js';
export { RouterPayloads } from '../connectors/router-payloads.js';
export { superviseRestarts } from '../orchestrate/supervisor.js';
export { AsyncQueue } from '../orchestrate/async-queue.js';
export { satisfiesRange } from '../version.js';
export {
  LAUNCH_CANCELLED_HINT,
  cancelled,
  describeExit,
  pipelineStopping,
  replicaLabel,
  requestAborted,
} from '../error-messages.js';
export type { CancelOptions } from '../error-messages.js';
