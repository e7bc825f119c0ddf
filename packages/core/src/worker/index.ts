/**
 * `@omnistage/core/worker`: the SDK a replica process uses to attach to its orchestrator.
 * Deliberately tiny (node built-ins only) because worker start-up time is benchmarked.
 */
export { connectToOrchestrator } from './connection.js';
export type {
  ConnectOptions,
  RequestHandler,
  RequestStream,
  ShutdownHandler,
  WorkerConnection,
  WorkerRequest,
  WorkerWelcome,
} from './types.js';
export { runWorker } from './run-worker.js';
export type { WorkerSetup } from './run-worker.js';
export { CONTROL_ENV, PROTOCOL_VERSION } from '../control/protocol.js';
export type { JsonObject, JsonValue } from '../control/protocol.js';
export { isPayloadRef, findPayloadRefs, inlinePayloadRef, PAYLOAD_MARK } from '../connectors/payload-ref.js';
export type { PayloadMeta, PayloadRef, PayloadVia } from '../connectors/payload-ref.js';
export { DEFAULT_SHM_THRESHOLD, INLINE_CONNECTOR, SHM_CONNECTOR } from '../connectors/connector-config.js';
export type { OutputConnector } from '../connectors/connector-config.js';
export type {
  CreatePayloadConnector,
  PayloadConnector,
  PayloadConnectorContext,
  PayloadConnectorRole,
  PayloadPutContext,
} from '../connectors/payload-connector.js';
