/**
 * Payload connectors that come from plugins: how engines that speak omnistage's protocol move a
 * stage's output bytes when the stage's connector class is neither `SharedMemoryConnector` nor
 * the inline connector (an RDMA store, a disk cache, a remote object store...).
 *
 * A plugin registers the class with `omni.defineConnector({ name, module })`. `module` exports
 * `createPayloadConnector(context)`; the same module is loaded in two places:
 * - every replica that puts or gets payloads of the class (the worker SDK, lazily): `put`, `get`;
 * - the orchestrator, once per run: `get` (a final output for the caller), `release` (every
 *   consumer acknowledged, or the request ended) and `sweep` (teardown).
 *
 * Imported by the worker SDK: node built-ins only.
 */
import { pathToFileURL } from 'node:url';
import { isAbsolute } from 'node:path';
import { OmniError } from '../errors.js';
import type { PayloadMeta, PayloadRef } from './payload-ref.js';

/** Where an instance runs. */
export type PayloadConnectorRole = 'worker' | 'orchestrator';

/** What `createPayloadConnector` is given. */
export interface PayloadConnectorContext {
  /** The connector class name (as in `connectors:` / `name:`). */
  readonly name: string;
  readonly role: PayloadConnectorRole;
  readonly runId: string;
  /** The replica's stage and replica ids (`worker` role only). */
  readonly stageId?: number;
  readonly replicaId?: number;
  /**
   * Worker: the stage's `omni_kv_config.connector_config` when it names this class (its `extra`
   * keys are flattened into it), else `{}`. A consumer may not see the producer's config: put what
   * a consumer needs to find the bytes into the reference. Orchestrator: the config of the first
   * stage that names the class.
   */
  readonly config: Readonly<Record<string, unknown>>;
  /** Orchestrator only: the config of every stage that names this class, by stage id (to sweep each). */
  readonly stageConfigs?: Readonly<Record<number, Readonly<Record<string, unknown>>>>;
}

/** A plugin connector class as one run uses it: its definition and the configs of the stages naming it. */
export interface RunConnector {
  readonly definition: PayloadConnectorDefinition;
  readonly stageConfigs: Readonly<Record<number, Readonly<Record<string, unknown>>>>;
}

/** What `put` is given besides the bytes. */
export interface PayloadPutContext {
  /**
   * The key the reference must carry: unique in the run, letters, digits and `_`. The
   * orchestrator's `payload_ack` and `release` name the payload by it.
   */
  readonly key: string;
  readonly meta: PayloadMeta;
}

/**
 * One instance of a connector class. `put` and `get` run in replicas; `get`, `release` and
 * `sweep` in the orchestrator. Every method may be async.
 */
export interface PayloadConnector {
  /**
   * Stores `bytes` (they may be reused by the caller once this settles) and returns the reference
   * to put in the stage output: `via` the class name and `key` the given key (extra fields are
   * kept and travel with the reference), or an inline reference for bytes it chose not to store.
   */
  put(bytes: Uint8Array, context: PayloadPutContext): PayloadRef | Promise<PayloadRef>;
  /** The bytes of a reference `put` returned (in any replica of the run, or the orchestrator). */
  get(ref: PayloadRef, into?: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Orchestrator: nobody reads this payload any more; free it. */
  release?(ref: PayloadRef): void | Promise<void>;
  /** Orchestrator, at teardown: free whatever is left of the run, announced or not. */
  sweep?(): void | Promise<void>;
  /** The process is done with the instance (replica shutdown, end of the run). */
  close?(): void | Promise<void>;
}

/** The export a connector module provides. */
export type CreatePayloadConnector = (context: PayloadConnectorContext) => PayloadConnector | Promise<PayloadConnector>;

/** A connector class a plugin provides (`omni.defineConnector`). */
export interface PayloadConnectorDefinition {
  /** Class name, as written in `connectors:` (`name:`) of a pipeline file. */
  readonly name: string;
  /**
   * The module exporting `createPayloadConnector`: an absolute path or a `file:` URL (e.g.
   * `new URL('./my-connector.js', import.meta.url)`). Replicas import it, so it must not need
   * anything the replica's process cannot load.
   */
  readonly module: string | URL;
  /** One line for `omnistage plan` and docs. */
  readonly description?: string;
}

/** The `file:` URL of a definition's module; an OmniError for anything else. */
export function connectorModuleUrl(definition: PayloadConnectorDefinition): string {
  const m = definition.module;
  if (m instanceof URL) {
    if (m.protocol !== 'file:') throw invalidDefinition(definition, `its module URL ${m.href} is not a file: URL`);
    return m.href;
  }
  if (typeof m === 'string' && m.startsWith('file:')) return new URL(m).href;
  if (typeof m === 'string' && isAbsolute(m)) return pathToFileURL(m).href;
  throw invalidDefinition(definition, `its module ${JSON.stringify(m)} is neither an absolute path nor a file: URL`);
}

function invalidDefinition(definition: PayloadConnectorDefinition, why: string): OmniError {
  return new OmniError('OMNI_PLUGIN_INVALID', `connector "${String(definition.name)}" cannot be defined: ${why}`, {
    hint: 'pass `module: new URL(\'./my-connector.js\', import.meta.url)` (see docs/plugins.md, "Payload connectors")',
  });
}

/**
 * Imports a connector module and creates an instance. Every way this can go wrong (the module
 * does not load, has no `createPayloadConnector`, returns something without `put`/`get`) is an
 * OmniError that names the class and the module.
 */
export async function createPayloadConnectorInstance(
  moduleUrl: string,
  context: PayloadConnectorContext,
): Promise<PayloadConnector> {
  const fail = (why: string, cause?: unknown): OmniError =>
    new OmniError('OMNI_PLUGIN_INVALID', `connector "${context.name}" (${moduleUrl}) ${why}`, {
      cause,
      hint: 'the module must export `createPayloadConnector(context)` returning `{ put, get, release?, sweep?, close? }` (see docs/plugins.md, "Payload connectors")',
      context: { connector: context.name },
    });
  let mod: Record<string, unknown>;
  try {
    mod = (await import(moduleUrl)) as Record<string, unknown>;
  } catch (err) {
    throw fail(`cannot be loaded: ${(err as Error).message}`, err);
  }
  const create = mod['createPayloadConnector'];
  if (typeof create !== 'function') throw fail('does not export a createPayloadConnector function');
  let instance: unknown;
  try {
    instance = await (create as CreatePayloadConnector)(context);
  } catch (err) {
    throw fail(`failed to start: ${(err as Error).message}`, err);
  }
  const i = instance as Partial<PayloadConnector> | null;
  if (typeof i !== 'object' || i === null || typeof i.put !== 'function' || typeof i.get !== 'function') {
    throw fail('returned no connector (an object with put and get functions)');
  }
  return i as PayloadConnector;
}
