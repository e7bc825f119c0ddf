import { pino, type Logger } from 'pino';
import { OmniError } from './errors.js';
import { EventBus } from './events/event-bus.js';
import { createHooks, type OmniHooks } from './hooks/hooks.js';
import { installPluginErrorWrapping } from './hooks/plugin-errors.js';
import { defaultLockDir } from './locks/paths.js';
import { ANY_STAGE_TYPE, type EngineDefinition, type OmnistagePlugin, type StageTypeDefinition } from './plugin.js';
import { INLINE_CONNECTOR, SHM_CONNECTOR } from './connectors/connector-config.js';
import { connectorModuleUrl, type PayloadConnectorDefinition } from './connectors/payload-connector.js';
import { isConnectorClassName } from './connectors/payload-ref.js';
import { CORE_VERSION, satisfiesRange } from './version.js';
import type { RunningPipeline } from './orchestrate/running-pipeline.js';
import type { GenerateOptions, PipelineOutput } from './orchestrate/router.js';

export interface OmnistageOptions {
  /** Applied in order; a plugin's `dependencies` must come before it. */
  plugins?: OmnistagePlugin[];
  /** A pino(-compatible) logger; core never creates transports. Default: silent. */
  logger?: Logger;
  /** Directory of device init locks shared by every omnistage on the host. */
  lockDir?: string;
}

/**
 * The orchestrator. Construct it with plugins, then `plan` a loaded config and bring the plan `up`
 * (see `planPipeline` / `bringUp`). Hooks are frozen at construction; plugins can only be added
 * until the first plan, so every replica of a run sees the same set of taps.
 */
export class Omnistage {
  readonly hooks: OmniHooks;
  readonly events: EventBus;
  readonly logger: Logger;
  readonly lockDir: string;
  readonly #plugins: OmnistagePlugin[] = [];
  readonly #stageTypes = new Map<string, StageTypeDefinition>();
  readonly #engines = new Map<string, Map<string, EngineDefinition>>();
  readonly #sharedEngineArgsSchemas: object[] = [];
  readonly #connectors = new Map<string, PayloadConnectorDefinition>();
  #sealed = false;
  #pipeline: RunningPipeline | null = null;

  constructor(options: OmnistageOptions = {}) {
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.lockDir = options.lockDir ?? defaultLockDir();
    this.hooks = createHooks();
    installPluginErrorWrapping(this.hooks);
    this.events = new EventBus(this.logger);
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
    if (typeof plugin?.name !== 'string' || plugin.name === '' || typeof plugin.apply !== 'function') {
      throw new OmniError('OMNI_PLUGIN_INVALID', 'a plugin must be an object with a non-empty "name" and an "apply(omni)" function', {
        hint: 'export `definePlugin({ name, apply(omni) { ... } })` from the plugin module',
      });
    }
    if (this.#plugins.some((p) => p.name === plugin.name)) {
      throw new OmniError('OMNI_PLUGIN_INVALID', `plugin "${plugin.name}" is applied twice`, {
        hint: 'list each plugin once (in the pipeline file, --plugin and code together)',
        context: { plugin: plugin.name },
      });
    }
    if (plugin.coreVersion !== undefined) {
      const ok = satisfiesRange(CORE_VERSION, plugin.coreVersion);
      if (ok !== true) {
        throw new OmniError(
          'OMNI_PLUGIN_INVALID',
          ok === null
            ? `plugin "${plugin.name}" declares core version range "${plugin.coreVersion}", which is not a valid range`
            : `plugin "${plugin.name}" needs @omnistage/core ${plugin.coreVersion}, but ${CORE_VERSION} is installed`,
          { hint: 'install a plugin version made for this core, or a core that matches the plugin', context: { plugin: plugin.name } },
        );
      }
    }
    for (const dep of plugin.dependencies ?? []) {
      if (!this.#plugins.some((p) => p.name === dep)) {
        throw new OmniError('OMNI_PLUGIN_INVALID', `plugin "${plugin.name}" depends on plugin "${dep}", which is not loaded before it`, {
          hint: `add "${dep}" to the plugins, before "${plugin.name}"`,
          context: { plugin: plugin.name },
        });
      }
    }
    try {
      plugin.apply(this);
    } catch (err) {
      if (err instanceof OmniError) throw err;
      throw new OmniError('OMNI_PLUGIN_INVALID', `plugin "${plugin.name}" failed while being applied: ${(err as Error).message}`, {
        cause: err,
        hint: `this is a bug in plugin "${plugin.name}" or its options`,
        context: { plugin: plugin.name },
      });
    }
    this.#plugins.push(plugin);
    return this;
  }

  get plugins(): readonly OmnistagePlugin[] {
    return this.#plugins;
  }

  /** Registers a stage type. A stage whose type nobody registered is a config error. */
  defineStageType(definition: StageTypeDefinition): void {
    if (this.#stageTypes.has(definition.name)) {
      throw new OmniError('OMNI_PLUGIN_INVALID', `stage type "${definition.name}" is defined twice`, {
        hint: 'two plugins define the same stage type; load only one of them',
      });
    }
    this.#stageTypes.set(definition.name, definition);
    for (const engine of this.#engines.get(ANY_STAGE_TYPE)?.values() ?? []) this.#tapEngine(definition.name, engine);
  }

  /**
   * Adds a JSON Schema that applies to the `engine_args` of every stage type (a cross-cutting
   * plugin's keys, e.g. the KV plugin's `omni_kv_config`); `omnistage schema` merges it in.
   */
  defineSharedEngineArgsSchema(schema: object): void {
    this.#sharedEngineArgsSchemas.push(schema);
  }

  /** The `engine_args` JSON Schema of a stage type: its own, combined with every shared one. */
  engineArgsJsonSchema(stageType: string): object | undefined {
    const own = this.#stageTypes.get(stageType)?.engineArgsJsonSchema;
    const parts = [...(own ? [own] : []), ...this.#sharedEngineArgsSchemas];
    if (parts.length <= 1) return parts[0];
    return { allOf: parts };
  }

  stageType(name: string): StageTypeDefinition | undefined {
    return this.#stageTypes.get(name);
  }

  stageTypeNames(): string[] {
    return [...this.#stageTypes.keys()].sort();
  }

  /** Registers an engine for a stage type; it answers `resolveWorker` for stages that select it. */
  defineEngine(definition: EngineDefinition): void {
    let byName = this.#engines.get(definition.stageType);
    if (!byName) this.#engines.set(definition.stageType, (byName = new Map()));
    if (byName.has(definition.name)) {
      throw new OmniError('OMNI_PLUGIN_INVALID', `engine "${definition.name}" for stage type "${definition.stageType}" is defined twice`, {
        hint: 'two plugins define the same engine; load only one of them',
      });
    }
    byName.set(definition.name, definition);
    // An engine for every stage type ('*') serves the types defined before it and after it.
    const types = definition.stageType === ANY_STAGE_TYPE ? this.#stageTypes.keys() : [definition.stageType];
    for (const type of types) this.#tapEngine(type, definition);
  }

  /** Answers resolveWorker for `type` when `definition` is the engine a stage of that type selects. */
  #tapEngine(type: string, definition: EngineDefinition): void {
    this.hooks.resolveWorker
      .for(type)
      .tapPromise({ name: `engine:${definition.name}`, stage: 0 }, async (ctx) =>
        ctx.engine === definition.name && this.engine(type, definition.name) === definition ? await definition.resolveWorker(ctx) : undefined,
      );
  }

  /** The engine `name` for a stage type: its own, else one defined for every type ('*'). */
  engine(stageType: string, name: string): EngineDefinition | undefined {
    return this.#engines.get(stageType)?.get(name) ?? this.#engines.get(ANY_STAGE_TYPE)?.get(name);
  }

  engineNames(stageType: string): string[] {
    return [...new Set([...(this.#engines.get(stageType)?.keys() ?? []), ...(this.#engines.get(ANY_STAGE_TYPE)?.keys() ?? [])])].sort();
  }

  /**
   * Registers a payload connector class for engines that speak omnistage's protocol: a stage
   * whose connector names it puts its output payloads through the class's module (see
   * {@link PayloadConnectorDefinition}); the orchestrator releases and sweeps them through it.
   */
  defineConnector(definition: PayloadConnectorDefinition): void {
    const name = definition?.name;
    const invalid = (why: string): OmniError =>
      new OmniError('OMNI_PLUGIN_INVALID', `connector "${String(name)}" cannot be defined: ${why}`, {
        hint: 'define each class once, named as in `connectors:` (a letter, then letters, digits, _ or .)',
      });
    if (!isConnectorClassName(name) || name === 'shm' || name === 'inline') throw invalid('its name is not a valid class name');
    if (name === SHM_CONNECTOR || name === INLINE_CONNECTOR) throw invalid('core implements this class itself');
    if (this.#connectors.has(name)) throw invalid('it is defined twice (two plugins define it; load only one of them)');
    connectorModuleUrl(definition); // a module that cannot be located fails here, not in a replica
    this.#connectors.set(name, definition);
  }

  /** A payload connector class a plugin defined. */
  connector(name: string): PayloadConnectorDefinition | undefined {
    return this.#connectors.get(name);
  }

  /** Names of the payload connector classes plugins defined. */
  connectorNames(): string[] {
    return [...this.#connectors.keys()].sort();
  }

  /** Called by `bringUp` once a pipeline is ready: `generate` routes to it. */
  attachPipeline(pipeline: RunningPipeline): void {
    this.#pipeline = pipeline;
  }

  /** The pipeline brought up last, if it is still running. */
  get pipeline(): RunningPipeline | null {
    return this.#pipeline && !this.#pipeline.stopping ? this.#pipeline : null;
  }

  /**
   * Sends a request through the running pipeline's stages and streams the outputs of its
   * `final_output` stages (the pipeline brought up last by `bringUp`).
   */
  generate(input: unknown, options?: GenerateOptions): AsyncIterable<PipelineOutput> {
    const pipeline = this.pipeline;
    if (!pipeline) {
      throw new OmniError('OMNI_REQUEST_FAILED', 'no pipeline is running', { hint: 'bring one up first: bringUp(omni, await planPipeline(omni, config))' });
    }
    return pipeline.generate(input, options);
  }

  /** Called by the planner: no plugins can be added from now on. */
  seal(): void {
    this.#sealed = true;
  }
}
