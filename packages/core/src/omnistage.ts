import { pino, type Logger } from 'pino';
import { OmniError } from './errors.js';
import { PipelineRegistry, type PipelineDefinition } from './config/pipelines.js';
import { EventBus } from './events/event-bus.js';
import { createHooks, type OmniHooks } from './hooks/hooks.js';
import { installPluginErrorWrapping } from './hooks/plugin-errors.js';
import { defaultLockDir } from './locks/paths.js';
import type { OmnistagePlugin } from './plugin.js';
import type { EngineDefinition, StageTypeDefinition } from './plugins/definition-types.js';
import type { PayloadConnectorDefinition } from './connectors/payload-connector.js';
import { registerBuiltinTaps } from './builtins/register.js';
import { Definitions } from './plugins/definitions.js';
import { createPluginApi } from './plugins/plugin-api.js';
import { CORE_VERSION, satisfiesRange } from './version.js';

/** What an {@link Omnistage} is built with: its plugins, logger and lock directory. */
export interface OmnistageOptions {
  /** Applied in order; a plugin's `dependencies` must come before it. */
  plugins?: OmnistagePlugin[];
  /** A pino(-compatible) logger; core never creates transports. Default: silent. */
  logger?: Logger;
  /** Directory of device init locks shared by every omnistage on the host. */
  lockDir?: string;
}

/** Why a plugin cannot be applied, or null when it can. */
function pluginProblem(plugin: OmnistagePlugin, applied: readonly OmnistagePlugin[]): OmniError | null {
  if (typeof plugin?.name !== 'string' || plugin.name === '' || typeof plugin.apply !== 'function') {
    return new OmniError(
      'OMNI_PLUGIN_INVALID',
      'a plugin must be an object with a non-empty "name" and an "apply(api)" function',
      {
        hint: 'export `definePlugin({ name, apply(api) { ... } })` from the plugin module',
      },
    );
  }
  const context = { plugin: plugin.name };
  if (applied.some((p) => p.name === plugin.name)) {
    return new OmniError('OMNI_PLUGIN_INVALID', `plugin "${plugin.name}" is applied twice`, {
      hint: 'list each plugin once (in the pipeline file, --plugin and code together)',
      context,
    });
  }
  if (plugin.coreVersion !== undefined) {
    const ok = satisfiesRange(CORE_VERSION, plugin.coreVersion);
    if (ok !== true) {
      return new OmniError(
        'OMNI_PLUGIN_INVALID',
        ok === null
          ? `plugin "${plugin.name}" declares core version range "${plugin.coreVersion}", which is not a valid range`
          : `plugin "${plugin.name}" needs @omnistage/core ${plugin.coreVersion}, but ${CORE_VERSION} is installed`,
        { hint: 'install a plugin version made for this core, or a core that matches the plugin', context },
      );
    }
  }
  const missing = (plugin.dependencies ?? []).find((dep) => !applied.some((p) => p.name === dep));
  if (missing !== undefined) {
    return new OmniError(
      'OMNI_PLUGIN_INVALID',
      `plugin "${plugin.name}" depends on plugin "${missing}", which is not loaded before it`,
      {
        hint: `add "${missing}" to the plugins, before "${plugin.name}"`,
        context,
      },
    );
  }
  return null;
}

/** Name under which an application's own definitions (made on the Omnistage, not in a plugin) are attributed. */
const APPLICATION = 'application';

/**
 * The orchestrator. Construct it with plugins, then `plan` a loaded config and bring the plan `up`
 * (see `planPipeline` / `bringUp`). Hooks are frozen at construction; plugins can only be added
 * until the first plan, so every replica of a run sees the same set of taps. Plugins never see
 * this object: each gets its own {@link PluginApi}.
 */
export class Omnistage {
  readonly hooks: OmniHooks;
  readonly events: EventBus;
  readonly logger: Logger;
  readonly lockDir: string;
  /** What plugins defined (stage types, engines, connectors); read by the planner. */
  readonly definitions: Definitions;
  readonly #plugins: OmnistagePlugin[] = [];
  #sealed = false;

  constructor(options: OmnistageOptions = {}) {
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.lockDir = options.lockDir ?? defaultLockDir();
    this.hooks = createHooks();
    installPluginErrorWrapping(this.hooks);
    // Core's own lock, spawn and attach: taps at the last stage, so a plugin's tap before them wins.
    registerBuiltinTaps(this.hooks);
    this.events = new EventBus(this.logger);
    this.definitions = new Definitions(this.hooks);
    for (const plugin of options.plugins ?? []) this.use(plugin);
  }

  /** Applies a plugin. Checks its core version range and that its dependencies were applied. */
  use(plugin: OmnistagePlugin): this {
    if (this.#sealed) {
      throw new OmniError('OMNI_PLUGIN_INVALID', `plugin "${plugin.name}" was added after planning started`, {
        hint: 'pass every plugin to the Omnistage constructor or call use() before plan()',
        context: { plugin: plugin.name },
      });
    }
    const problem = pluginProblem(plugin, this.#plugins);
    if (problem) throw problem;
    try {
      plugin.apply(
        createPluginApi(plugin.name, {
          definitions: this.definitions,
          hooks: this.hooks,
          events: this.events,
          logger: this.logger,
        }),
      );
    } catch (err) {
      if (err instanceof OmniError) throw err;
      throw new OmniError(
        'OMNI_PLUGIN_INVALID',
        `plugin "${plugin.name}" failed while being applied: ${(err as Error).message}`,
        {
          cause: err,
          hint: `this is a bug in plugin "${plugin.name}" or its options`,
          context: { plugin: plugin.name },
        },
      );
    }
    this.#plugins.push(plugin);
    return this;
  }

  get plugins(): readonly OmnistagePlugin[] {
    return this.#plugins;
  }

  /** Registers a stage type from the application itself (plugins use their API's method). */
  defineStageType(definition: StageTypeDefinition): void {
    this.definitions.defineStageType(definition, APPLICATION);
  }

  /** Registers an engine from the application itself (plugins use their API's method). */
  defineEngine(definition: EngineDefinition): void {
    this.definitions.defineEngine(definition, APPLICATION);
  }

  /** Registers a payload connector class from the application itself (plugins use their API's method). */
  defineConnector(definition: PayloadConnectorDefinition): void {
    this.definitions.defineConnector(definition);
  }

  /** The `engine_args` JSON Schema of a stage type: its own, combined with every shared one. */
  engineArgsJsonSchema(stageType: string): object | undefined {
    return this.definitions.engineArgsJsonSchema(stageType);
  }

  /** Names of the stage types plugins defined. */
  stageTypeNames(): string[] {
    return this.definitions.stageTypeNames();
  }

  /** Pipelines plugins registered (`definePipeline`); the loader selects deploy-file topology from them. */
  get pipelines(): PipelineRegistry {
    return this.definitions.pipelines;
  }

  /**
   * Registers a pipeline (a model's topology) from the application itself (plugins use their API's
   * method); deploy files select it by `pipeline:`, `--pipeline` or their model.
   */
  definePipeline(definition: PipelineDefinition): void {
    this.definitions.definePipeline(definition);
  }

  /** Names of the payload connector classes plugins defined. */
  connectorNames(): string[] {
    return this.definitions.connectorNames();
  }

  /** Called by the planner: no plugins can be added from now on. */
  seal(): void {
    this.#sealed = true;
  }
}
