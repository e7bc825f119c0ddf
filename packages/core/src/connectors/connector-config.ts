/**
 * Which connector a replica puts its output payloads through, read from the engine args of its
 * `welcome` (`omni_kv_config.connector_config`, computed by the KV plugin from the pipeline's
 * connectors and edges).
 *
 * Imported by the worker SDK: node built-ins only.
 */

/** Connector class of the shared-memory connector (inline at or below the threshold, a file above). */
export const SHM_CONNECTOR = 'SharedMemoryConnector';
/** Connector class of the inline connector (bytes inside the control message). */
export const INLINE_CONNECTOR = 'InlineConnector';
/** Default `shm_threshold_bytes` of {@link SHM_CONNECTOR}. */
export const DEFAULT_SHM_THRESHOLD = 65536;
/**
 * Largest payload that goes inline whatever the connector: its base64 must fit in one control
 * line (8 MiB by default). Bigger ones go through shared memory even on the inline connector.
 */
export const INLINE_MAX_BYTES = 4 * 1024 * 1024;

/** The connector a replica uses for its outputs. */
export interface OutputConnector {
  /** Connector class name (`SharedMemoryConnector`, `InlineConnector`, or the configured class). */
  type: string;
  /**
   * Payloads of more bytes than this go through shared memory; smaller or equal ones inline.
   * Not used for a plugin's class (its `put` gets every payload).
   */
  shmThresholdBytes: number;
  /** Set when a plugin defines the class (`omni.defineConnector`): the worker SDK loads its module. */
  plugin?: true;
}

/** The stage's `omni_kv_config.connector_config`, if its engine args have one. */
export function connectorConfigOf(
  engineArgs: Readonly<Record<string, unknown>>,
): Readonly<Record<string, unknown>> | undefined {
  const kv = engineArgs['omni_kv_config'];
  const cfg = typeof kv === 'object' && kv !== null ? (kv as Record<string, unknown>)['connector_config'] : undefined;
  return typeof cfg === 'object' && cfg !== null && !Array.isArray(cfg) ? (cfg as Record<string, unknown>) : undefined;
}

/**
 * The output connector for a replica's engine args: `SharedMemoryConnector` with its
 * `shm_threshold_bytes` (default 65536) when the stage sends over one; a class in
 * `pluginClasses` (defined by a plugin) when the stage sends over it; otherwise (another class,
 * no connector, or a stage that only receives) the inline connector. Except through a plugin's
 * class, a payload above {@link INLINE_MAX_BYTES} goes through shared memory.
 */
export function outputConnectorOf(
  engineArgs: Readonly<Record<string, unknown>>,
  pluginClasses: Iterable<string> = [],
): OutputConnector {
  const c = connectorConfigOf(engineArgs);
  if (c !== undefined) {
    // A receiver-only config is the stage's input side: its outputs go to the user, not to a stage.
    const sends = c['role'] !== 'receiver';
    if (sends && typeof c['type'] === 'string' && new Set(pluginClasses).has(c['type'])) {
      return { type: c['type'], shmThresholdBytes: INLINE_MAX_BYTES, plugin: true };
    }
    if (c['type'] === SHM_CONNECTOR && sends) {
      const t = c['shm_threshold_bytes'];
      const threshold = typeof t === 'number' && Number.isFinite(t) && t >= 0 ? Math.floor(t) : DEFAULT_SHM_THRESHOLD;
      return { type: SHM_CONNECTOR, shmThresholdBytes: Math.min(threshold, INLINE_MAX_BYTES) };
    }
  }
  return { type: INLINE_CONNECTOR, shmThresholdBytes: INLINE_MAX_BYTES };
}
