/** `@omnistage/plugin-kv-connector`: transfer wiring between stages (connectors, edges, KV topology, `--kv-transfer-config`). */
export { KV_PLUGIN_NAME, kvConnectorPlugin } from './kv-plugin.js';
export type { KvConnectorPluginOptions } from './kv-plugin.js';
