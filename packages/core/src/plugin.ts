import type { PluginApi } from './plugins/plugin-api.js';

/**
 * A plugin: a name and an `apply` that defines stage types, engines or connectors, taps hooks and
 * listens to events through the {@link PluginApi} it is given. Everything first-party (llm,
 * diffusion, KV connectors) is written against this same API.
 */
export interface OmnistagePlugin {
  readonly name: string;
  /** semver range of `@omnistage/core` this plugin works with (checked at load). */
  readonly coreVersion?: string;
  /** Names of plugins that must be applied before this one. */
  readonly dependencies?: readonly string[];
  apply(api: PluginApi): void;
}

/** Identity helper that gives plugin authors type checking and completion. */
export function definePlugin(plugin: OmnistagePlugin): OmnistagePlugin {
  return plugin;
}
