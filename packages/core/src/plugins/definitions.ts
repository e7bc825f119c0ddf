import { OmniError } from '../errors.js';
import type { OmniHooks } from '../hooks/hooks.js';
import { STAGE_TYPE } from '../hooks/stages.js';
import { attributed } from '../hooks/plugin-errors.js';
import { ANY_STAGE_TYPE, type EngineDefinition, type StageTypeDefinition } from './definition-types.js';
import { INLINE_CONNECTOR, SHM_CONNECTOR } from '../connectors/connector-config.js';
import { connectorModuleUrl, type PayloadConnectorDefinition } from '../connectors/payload-connector.js';
import { isConnectorClassName } from '../connectors/payload-ref.js';
import { PipelineRegistry, type PipelineDefinition } from '../config/pipelines.js';
import type { ChunkProcessorDefinition } from '../orchestrate/chunk-processor.js';
import { BUILTIN_CHUNK_PROCESSORS } from '../orchestrate/builtin-chunk-processors.js';

/** The stage's id for a message, from a callback's stage argument. */
const stageSite = (stage: { stage_id?: number } | undefined): { stage_id?: number } =>
  typeof stage?.stage_id === 'number' ? { stage_id: stage.stage_id } : {};

/** A stage type whose every callback names its plugin when it throws (config time, exit 2). */
function attributedStageType(def: StageTypeDefinition, owner: string): StageTypeDefinition {
  const site = (callback: string) => (stage?: { stage_id?: number }) => ({
    plugin: owner,
    callback: `stage type "${def.name}" ${callback}`,
    when: 'plan' as const,
    context: stageSite(stage),
  });
  return {
    ...def,
    devicesPerReplica: attributed(def.devicesPerReplica.bind(def), (stage) => site('devicesPerReplica')(stage)),
    ...(def.lockDeviceCount
      ? { lockDeviceCount: attributed(def.lockDeviceCount.bind(def), (_a, stage) => site('lockDeviceCount')(stage)) }
      : {}),
    ...(def.validateStage
      ? { validateStage: attributed(def.validateStage.bind(def), (stage) => site('validateStage')(stage)) }
      : {}),
  };
}

/** An engine whose validation names its plugin when it throws; `resolveWorker` and `attach` become hook taps. */
function attributedEngine(def: EngineDefinition, owner: string): EngineDefinition {
  const out: EngineDefinition = { ...def };
  if (def.validateStage) {
    out.validateStage = attributed(def.validateStage.bind(def), (stage) => ({
      plugin: owner,
      callback: `engine "${def.name}" validateStage`,
      when: 'plan',
      context: stageSite(stage),
    }));
  }
  if (def.edgeFlow) {
    const callback = `engine "${def.name}" edgeFlow`;
    const edgeFlow = attributed(def.edgeFlow.bind(def), (_p, consumer) => ({
      plugin: owner,
      callback,
      when: 'plan',
      context: stageSite(consumer),
    }));
    out.edgeFlow = (producer, consumer, ctx) => {
      const flow = edgeFlow(producer, consumer, ctx);
      if (flow === undefined) return undefined;
      // The flow's processor runs per request: its failures name the plugin too (exit 1).
      const site = {
        plugin: owner,
        callback: `${callback} inputProcessor`,
        when: 'run' as const,
        context: { stage_id: consumer.stage_id },
      };
      return { ...flow, inputProcessor: attributed(flow.inputProcessor, site) };
    };
  }
  return out;
}

/**
 * What plugins defined: stage types, engines, payload connector classes, shared engine-args
 * schemas and pipelines. One per {@link Omnistage}; the planner reads it, plugins write it through their API.
 */
export class Definitions {
  readonly #hooks: OmniHooks;
  readonly #stageTypes = new Map<string, StageTypeDefinition>();
  readonly #engines = new Map<string, Map<string, EngineDefinition>>();
  /** Who defined each engine (its taps carry that name). */
  readonly #owners = new Map<EngineDefinition, string>();
  readonly #sharedEngineArgsSchemas: object[] = [];
  readonly #connectors = new Map<string, PayloadConnectorDefinition>();
  readonly #chunkProcessors = new Map<string, ChunkProcessorDefinition>(
    BUILTIN_CHUNK_PROCESSORS.map((p) => [p.name, p]),
  );
  /** Pipelines (`definePipeline`); the loader selects deploy-file topology from them. */
  readonly pipelines = new PipelineRegistry();

  constructor(hooks: OmniHooks) {
    this.#hooks = hooks;
  }

  /** Registers a stage type for `owner` (a plugin name). */
  defineStageType(definition: StageTypeDefinition, owner: string): void {
    if (this.#stageTypes.has(definition.name)) {
      throw new OmniError('OMNI_PLUGIN_INVALID', `stage type "${definition.name}" is defined twice`, {
        hint: 'two plugins define the same stage type; load only one of them',
        context: { plugin: owner },
      });
    }
    this.#stageTypes.set(definition.name, attributedStageType(definition, owner));
    // Engines for every stage type serve the types defined after them too.
    for (const engine of this.#engines.get(ANY_STAGE_TYPE)?.values() ?? []) this.#tapEngine(definition.name, engine);
  }

  /** Registers an engine for `owner`: its `resolveWorker` and `attach` answer for replicas that select it. */
  defineEngine(definition: EngineDefinition, owner: string): void {
    let byName = this.#engines.get(definition.stageType);
    if (!byName) this.#engines.set(definition.stageType, (byName = new Map()));
    if (byName.has(definition.name)) {
      throw new OmniError(
        'OMNI_PLUGIN_INVALID',
        `engine "${definition.name}" for stage type "${definition.stageType}" is defined twice`,
        {
          hint: 'two plugins define the same engine; load only one of them',
          context: { plugin: owner },
        },
      );
    }
    const defined = attributedEngine(definition, owner);
    byName.set(definition.name, defined);
    this.#owners.set(defined, owner);
    // An engine for every stage type ('*') serves the types defined before it and after it.
    const types = definition.stageType === ANY_STAGE_TYPE ? [...this.#stageTypes.keys()] : [definition.stageType];
    for (const type of types) this.#tapEngine(type, defined);
    if (defined.attach) {
      const attach = defined.attach.bind(defined);
      this.#hooks.attach.tapPromise({ name: owner, stage: STAGE_TYPE }, async (proc, rt) =>
        this.#selects(rt.stage.stage_type, rt.stage.engine, defined) ? await attach(proc, rt) : undefined,
      );
    }
  }

  /** True when a stage of `stageType` asking for `engine` runs on `definition` (a type's own engine wins over one for every type). */
  #selects(stageType: string, engine: string, definition: EngineDefinition): boolean {
    return engine === definition.name && this.engine(stageType, engine) === definition;
  }

  /** Answers resolveWorker for `type` when `definition` is the engine a stage of that type selects. */
  #tapEngine(type: string, definition: EngineDefinition): void {
    this.#hooks.resolveWorker
      .for(type)
      .tapPromise({ name: this.#owners.get(definition) ?? definition.name, stage: STAGE_TYPE }, async (ctx) =>
        this.#selects(type, ctx.engine, definition) ? await definition.resolveWorker(ctx) : undefined,
      );
  }

  /** Adds a JSON Schema that applies to the `engine_args` of every stage type. */
  defineSharedEngineArgsSchema(schema: object): void {
    this.#sharedEngineArgsSchemas.push(schema);
  }

  /** The top-level keys the shared schemas name (`properties`): valid in the engine args of every engine. */
  sharedEngineArgKeys(): Set<string> {
    const keys = new Set<string>();
    for (const schema of this.#sharedEngineArgsSchemas) {
      const properties = (schema as { properties?: unknown }).properties;
      if (typeof properties === 'object' && properties !== null) for (const k of Object.keys(properties)) keys.add(k);
    }
    return keys;
  }

  /** Registers a payload connector class (see {@link PayloadConnectorDefinition}). */
  defineConnector(definition: PayloadConnectorDefinition): void {
    const name = definition?.name;
    const invalid = (why: string): OmniError =>
      new OmniError('OMNI_PLUGIN_INVALID', `connector "${String(name)}" cannot be defined: ${why}`, {
        hint: 'define each class once, named as in `connectors:` (a letter, then letters, digits, _ or .)',
      });
    if (!isConnectorClassName(name) || name === 'shm' || name === 'inline')
      throw invalid('its name is not a valid class name');
    if (name === SHM_CONNECTOR || name === INLINE_CONNECTOR) throw invalid('core implements this class itself');
    if (this.#connectors.has(name)) throw invalid('it is defined twice (two plugins define it; load only one of them)');
    connectorModuleUrl(definition); // a module that cannot be located fails here, not in a replica
    this.#connectors.set(name, definition);
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

  /** The engine `name` for a stage type: its own, else one defined for every type ('*'). */
  engine(stageType: string, name: string): EngineDefinition | undefined {
    return this.#engines.get(stageType)?.get(name) ?? this.#engines.get(ANY_STAGE_TYPE)?.get(name);
  }

  engineNames(stageType: string): string[] {
    return [
      ...new Set([
        ...(this.#engines.get(stageType)?.keys() ?? []),
        ...(this.#engines.get(ANY_STAGE_TYPE)?.keys() ?? []),
      ]),
    ].sort();
  }

  connector(name: string): PayloadConnectorDefinition | undefined {
    return this.#connectors.get(name);
  }

  connectorNames(): string[] {
    return [...this.#connectors.keys()].sort();
  }

  /** Registers a chunk processor of streaming edges for `owner`; a name defined twice (or a built-in's) is an error. */
  defineChunkProcessor(definition: ChunkProcessorDefinition, owner: string): void {
    const name = definition?.name;
    if (typeof name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || typeof definition.create !== 'function') {
      throw new OmniError(
        'OMNI_PLUGIN_INVALID',
        `chunk processor "${String(name)}" cannot be defined: it needs a name (letters, digits, _) and a create function`,
        {
          hint: 'defineChunkProcessor({ name: "my_async_chunk", create: (ctx) => ({ chunk, end }) })',
          context: { plugin: owner },
        },
      );
    }
    if (this.#chunkProcessors.has(name)) {
      throw new OmniError('OMNI_PLUGIN_INVALID', `chunk processor "${name}" is defined twice`, {
        hint: 'a plugin defines a chunk processor that exists already (core or another plugin); give it another name',
        context: { plugin: owner },
      });
    }
    const create = definition.create.bind(definition);
    this.#chunkProcessors.set(name, {
      name,
      create: (ctx) => {
        // Its failures name the plugin, the stage and the request (exit 1, the request fails).
        const site = {
          plugin: owner,
          callback: `chunk processor "${name}"`,
          when: 'run' as const,
          context: { stage_id: ctx.to.stage_id, request_id: ctx.request_id },
        };
        const p = attributed(create, site)(ctx);
        return { chunk: attributed(p.chunk.bind(p), site), end: attributed(p.end.bind(p), site) };
      },
    });
  }

  /** The chunk processor of that name (core's or a plugin's). */
  chunkProcessor(name: string): ChunkProcessorDefinition | undefined {
    return this.#chunkProcessors.get(name);
  }

  /** Registers a pipeline (a model's topology); a name registered twice is an error. */
  definePipeline(definition: PipelineDefinition): void {
    this.pipelines.define(definition);
  }
}
