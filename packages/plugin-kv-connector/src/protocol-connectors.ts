import { DEFAULT_SHM_THRESHOLD, INLINE_CONNECTOR, SHM_CONNECTOR, outputConnectorOf } from '@omnistage/core';

/** How a connector class moves payloads for engines that speak omnistage's control protocol. */
export interface ProtocolConnectorClass {
  /** The class name, as written in `connectors:` / `name:`. */
  readonly name: string;
  /** `shm`: inline up to `shm_threshold_bytes`, a shared-memory file above; `inline`: in the control message. */
  readonly transport: 'shm' | 'inline';
  /** `extra` keys the class understands, with their defaults. */
  readonly defaults: Readonly<Record<string, unknown>>;
  readonly description: string;
}

/**
 * The connector classes implemented for engines that speak omnistage's protocol (the reference
 * engines, any worker built on `@omnistage/core/worker`): the worker SDK puts a stage's outputs
 * through the class named by its `omni_kv_config.connector_config`. Any other class (vLLM-native
 * connectors, Mooncake...) is left to its engine; a protocol engine falls back to inline for it.
 */
export const PROTOCOL_CONNECTORS: Readonly<Record<string, ProtocolConnectorClass>> = Object.freeze({
  [SHM_CONNECTOR]: Object.freeze({
    name: SHM_CONNECTOR,
    transport: 'shm' as const,
    defaults: Object.freeze({ shm_threshold_bytes: DEFAULT_SHM_THRESHOLD }),
    description:
      'payloads at or below shm_threshold_bytes inline; larger ones written once to /dev/shm, read by key, deleted after the consumers acknowledge',
  }),
  [INLINE_CONNECTOR]: Object.freeze({
    name: INLINE_CONNECTOR,
    transport: 'inline' as const,
    defaults: Object.freeze({}),
    description:
      'payloads base64 inside the control message (above 4 MiB they still go through shared memory: a control line is limited)',
  }),
});

/** True for a connector class the protocol engines implement. */
export function isProtocolConnector(name: string): boolean {
  return Object.hasOwn(PROTOCOL_CONNECTORS, name);
}

/** What a protocol engine with these engine args does with its output payloads (the worker SDK's rule). */
export function protocolOutputConnector(engineArgs: Readonly<Record<string, unknown>>): {
  type: string;
  shm_threshold_bytes: number;
} {
  const c = outputConnectorOf(engineArgs);
  return { type: c.type, shm_threshold_bytes: c.shmThresholdBytes };
}
