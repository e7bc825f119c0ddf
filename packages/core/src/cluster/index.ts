/**
 * Scale-out (docs/scale-out.md): a head whose stages are filled by replicas that agents start on
 * other hosts, found through etcd. Only the head and the agents import this entry point.
 */
export { Agent, type AgentOptions } from './agent.js';
export { ClusterHead, type HeadOptions } from './head.js';
export {
  derivePayloadToken,
  deriveReplicaToken,
  insecureSecret,
  readClusterSecret,
  type TokenScope,
} from './cluster-token.js';
export { PayloadServer, type PayloadServerOptions } from './payload-server.js';
export {
  fetchRemotePayload,
  releaseRemotePayload,
  type FetchAccess,
  type PayloadPlane,
} from '../connectors/payload-fetch.js';
export { fingerprintDifferences, fingerprintHash, pipelineFingerprint } from './config-fingerprint.js';
export {
  clusterKeys,
  type AttachedRecord,
  type Discovery,
  type HeadRecord,
  type Registration,
  type ReplicaChange,
  type ReplicaRecord,
} from './discovery.js';
export { markAcrossHosts, type CrossHostPlan } from './cross-host.js';
export { EtcdDiscovery } from './etcd-discovery.js';
export { LocalProcessLauncher, type LaunchRequest, type Launcher } from './launcher.js';
export {
  checkTlsUse,
  loadTlsFiles,
  tlsEnv,
  type TlsFiles,
  type TlsMaterial,
  type TlsRole,
} from '../control/tls-material.js';
