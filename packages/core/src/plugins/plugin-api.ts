import type { Logger } from 'pino';
import type { EventBus } from '../events/event-bus.js';
import type { OmniEvent, OmniEventOf, OmniEventType } from '../events/types.js';
import type { OmniHooks } from '../hooks/hooks.js';
import { pluginFailure } from '../hooks/plugin-errors.js';
import type { EngineDefinition, StageTypeDefinition } from './definition-types.js';
import type { PayloadConnectorDefinition } from '../connectors/payload-connector.js';
import type { Definitions } from './definitions.js';
import type { PipelineDefinition } from '../config/pipelines.js';
import type { ChunkProcessorDefinition } from '../orchestrate/chunk-processor.js';

/** How a plugin observes a run: typed listeners that can never break it (a throw is logged, naming the plugin). */
export interface PluginEvents {
  on<T extends OmniEventType>(type: T, listener: (event: OmniEventOf<T>) => void): () => void;
  onAny(listener: (event: OmniEvent) => void): () => void;
}

/**
 * What a plugin gets in `apply()`: the one way it changes omnistage. It defines things, taps the
 * hooks, listens to events and logs — it cannot reach the orchestrator or another run's objects.
 * A new kind of definition is one method here and one line in {@link createPluginApi}.
 */
export interface PluginApi {
  /** This plugin's name (taps and definitions are attributed to it). */
  readonly name: string;
  /** Registers a stage type. A stage whose type nobody registered is a config error. */
  defineStageType(definition: StageTypeDefinition): void;
  /** Registers an engine for a stage type: its worker, its attach and its validation. */
  defineEngine(definition: EngineDefinition): void;
  /** Registers a payload connector class for engines that speak omnistage's protocol. */
  defineConnector(definition: PayloadConnectorDefinition): void;
  /**
   * Registers a chunk processor for streaming edges (docs/plugins.md "Chunk processors"): a stage
   * whose `custom_process_next_stage_input_func` ends with its name streams to the next stage when
   * the pipeline sets `async_chunk: true`.
   */
  defineChunkProcessor(definition: ChunkProcessorDefinition): void;
  /** A JSON Schema for keys valid in the `engine_args` of every stage type (`omnistage schema` merges it). */
  defineSharedEngineArgsSchema(schema: object): void;
  /** Registers a pipeline (a model's topology) that deploy files select by `pipeline:`, `--pipeline` or their model. */
  definePipeline(definition: PipelineDefinition): void;
  /** The hooks, to tap (frozen: tap, never replace). Name taps after the plugin; errors are attributed to that name. */
  readonly hooks: OmniHooks;
  /** The run's events. */
  readonly events: PluginEvents;
  /** A logger whose lines carry `plugin: <name>`. */
  readonly logger: Logger;
}

/** What {@link createPluginApi} needs from the orchestrator that applies the plugin. */
export interface PluginApiDeps {
  readonly definitions: Definitions;
  readonly hooks: OmniHooks;
  readonly events: EventBus;
  readonly logger: Logger;
}

/** Event listeners whose throws are logged as `OMNI_PLUGIN_FAILED` naming the plugin. */
function pluginEvents(name: string, events: EventBus, logger: Logger): PluginEvents {
  const guard =
    <E extends OmniEvent>(listener: (event: E) => void) =>
    (event: E): void => {
      try {
        listener(event);
      } catch (err) {
        const e = pluginFailure(err, { plugin: name, callback: `an event listener (${event.type})`, when: 'run' });
        logger.warn(
          { err: e, code: e.code, plugin: name },
          `${e.message}; the event was still delivered to the others`,
        );
      }
    };
  return {
    on: (type, listener) => events.on(type, guard(listener)),
    onAny: (listener) => events.onAny(guard(listener)),
  };
}

/** The API object one plugin gets in `apply()`. */
export function createPluginApi(name: string, deps: PluginApiDeps): PluginApi {
  const logger = deps.logger.child({ plugin: name });
  return Object.freeze({
    name,
    defineStageType: (d: StageTypeDefinition) => deps.definitions.defineStageType(d, name),
    defineEngine: (d: EngineDefinition) => deps.definitions.defineEngine(d, name),
    defineConnector: (d: PayloadConnectorDefinition) => deps.definitions.defineConnector(d),
    defineChunkProcessor: (d: ChunkProcessorDefinition) => deps.definitions.defineChunkProcessor(d, name),
    defineSharedEngineArgsSchema: (schema: object) => deps.definitions.defineSharedEngineArgsSchema(schema),
    definePipeline: (d: PipelineDefinition) => deps.definitions.definePipeline(d),
    hooks: deps.hooks,
    events: pluginEvents(name, deps.events, logger),
    logger,
  });
}
