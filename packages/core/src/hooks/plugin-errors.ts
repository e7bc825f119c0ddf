import { OmniError, isOmniError, type ErrorContext } from '../errors.js';
import type { OmniHooks } from './hooks.js';
import type { ReplicaConnection, ReplicaOutputChunk, ReplicaRequest } from './replica-handles.js';
import { replicaLabel } from '../error-messages.js';

interface AnyTap {
  name: string;
  type: 'sync' | 'async' | 'promise';
  fn: (...args: unknown[]) => unknown;
}

interface Interceptable {
  intercept(interceptor: { register?: (tap: never) => unknown; factory?: (key: never, hook: never) => unknown }): void;
}

/** Hooks that run while a plan is computed: a plugin failing in them is a config-time failure (exit 2). */
const PLANNING_HOOKS = new Set(['validateConfig', 'extractMetadata', 'buildArgs', 'resolveWorker', 'planned']);

/** Where plugin code failed: the plugin, the callback (hook or definition method) and when. */
export interface PluginCallSite {
  plugin: string;
  /** The hook or callback, e.g. `buildArgs`, `validateStage`, `stage type "tts" devicesPerReplica`. */
  callback: string;
  /** How the message names it, when not just `callback` (hooks: `hook "buildArgs"`). */
  described?: string;
  /** Config-time callbacks (planning) exit 2; runtime ones (bring-up, requests, events) exit 1. */
  when: 'plan' | 'run';
  /** Stage and replica the call was about, when there is one. */
  context?: ErrorContext;
}

/**
 * Makes any error thrown by plugin code name the plugin and the callback. OmniErrors a plugin
 * throws on purpose (a config error with a location) keep their code and gain the context;
 * anything else — an OMNI_INTERNAL included, which is the plugin's bug, not core's — becomes
 * OMNI_PLUGIN_FAILED, so a user sees which plugin broke, not "a bug in omnistage" or a stack trace.
 */
export function pluginFailure(err: unknown, site: PluginCallSite): OmniError {
  if (isOmniError(err) && err.code !== 'OMNI_INTERNAL') {
    err.context.plugin ??= site.plugin;
    err.context.hook ??= site.callback;
    for (const [k, v] of Object.entries(site.context ?? {})) err.context[k] ??= v;
    return err;
  }
  const message = isOmniError(err)
    ? err.message
    : err instanceof Error
      ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}`
      : String(err);
  const { stage_id, replica_id } = site.context ?? {};
  const where =
    stage_id === undefined
      ? ''
      : ` (${replica_id === undefined ? `stage ${stage_id}` : replicaLabel({ stage_id, replica_id })})`;
  return new OmniError(
    'OMNI_PLUGIN_FAILED',
    `plugin "${site.plugin}" failed in ${site.described ?? site.callback}${where}: ${message}`,
    {
      cause: err,
      exitCode: site.when === 'plan' ? 2 : 1,
      context: { ...site.context, plugin: site.plugin, hook: site.callback },
      hint: `this is a bug in plugin "${site.plugin}" or in how it is configured; run with --log-format json to see the stack`,
    },
  );
}

/** Hook errors name the tap (the plugin) and the hook; see {@link pluginFailure}. */
export function annotatePluginError(err: unknown, plugin: string, hook: string): OmniError {
  const base = hook.replace(/\(.*$/, '');
  return pluginFailure(err, {
    plugin,
    callback: hook,
    described: `hook "${hook}"`,
    when: PLANNING_HOOKS.has(base) ? 'plan' : 'run',
  });
}

/**
 * Wraps one plugin callback so whatever it throws (synchronously or as a rejection) is attributed
 * by {@link pluginFailure}. `site` may be a function of the call's arguments (to name the stage).
 */
export function attributed<A extends unknown[], R>(
  fn: (...args: A) => R,
  site: PluginCallSite | ((...args: A) => PluginCallSite),
): (...args: A) => R {
  const siteOf = (args: A): PluginCallSite => (typeof site === 'function' ? site(...args) : site);
  return (...args: A): R => {
    let result: R;
    try {
      result = fn(...args);
    } catch (e) {
      throw pluginFailure(e, siteOf(args));
    }
    if (result instanceof Promise) {
      return result.catch((e: unknown) => {
        throw pluginFailure(e, siteOf(args));
      }) as R;
    }
    return result;
  };
}

/** Built-in taps (core's own lock, spawn, attach) are core, not a plugin: their errors stay as they are. */
export const BUILTIN_TAP_PREFIX = 'omnistage:';

/**
 * The connection a plugin's `attach` tap returned, its requests' errors attributed like the tap's:
 * without this a TypeError in a plugin's transport reached an HTTP client as "a bug in omnistage"
 * (500 OMNI_INTERNAL). Set on the object itself, so its methods keep their private fields.
 */
function attributedConnection(conn: ReplicaConnection, plugin: string, context: ErrorContext): ReplicaConnection {
  const request = conn.request.bind(conn);
  const site: PluginCallSite = {
    plugin,
    callback: 'request',
    described: 'a request of the connection its attach tap returned',
    when: 'run',
    context,
  };
  async function* attributed(req: ReplicaRequest, signal?: AbortSignal): AsyncIterable<ReplicaOutputChunk> {
    try {
      yield* request(req, signal);
    } catch (e) {
      throw pluginFailure(e, { ...site, context: { ...context, request_id: req.request_id } });
    }
  }
  try {
    Object.defineProperty(conn, 'request', { value: attributed, configurable: true, writable: true });
  } catch {
    // A frozen connection keeps its own errors; the router still names stage and replica.
  }
  return conn;
}

/** What a tap's answer becomes as the hook hands it on (see {@link attributedConnection}). */
function answerOf(tapName: string, hookName: string, args: unknown[]): (result: unknown) => unknown {
  if (hookName !== 'attach') return (result) => result;
  const replica = (args[1] as { replica?: { stage_id: number; replica_id: number } } | undefined)?.replica;
  const context: ErrorContext = replica ? { stage_id: replica.stage_id, replica_id: replica.replica_id } : {};
  return (result) =>
    result !== null && typeof result === 'object' && typeof (result as ReplicaConnection).request === 'function'
      ? attributedConnection(result as ReplicaConnection, tapName, context)
      : result;
}

function wrapTap(tap: AnyTap, hookName: string): AnyTap {
  if (tap.name.startsWith(BUILTIN_TAP_PREFIX)) return tap;
  const fn = tap.fn;
  const wrap = (e: unknown): OmniError => annotatePluginError(e, tap.name, hookName);
  if (tap.type === 'promise') {
    tap.fn = (...args) => {
      try {
        return Promise.resolve(fn(...args)).then(answerOf(tap.name, hookName, args), (e: unknown) => {
          throw wrap(e);
        });
      } catch (e) {
        return Promise.reject(wrap(e));
      }
    };
  } else if (tap.type === 'sync') {
    tap.fn = (...args) => {
      try {
        return answerOf(tap.name, hookName, args)(fn(...args));
      } catch (e) {
        throw wrap(e);
      }
    };
  } else {
    tap.fn = (...args) => {
      const callback = args.pop() as (err?: unknown, result?: unknown) => void;
      const answer = answerOf(tap.name, hookName, args);
      try {
        fn(...args, (err: unknown, result: unknown) => (err ? callback(wrap(err)) : callback(err, answer(result))));
      } catch (e) {
        callback(wrap(e));
      }
    };
  }
  return tap;
}

/** Installs the error-annotating `register` interceptor on every hook (and every HookMap's hooks). */
export function installPluginErrorWrapping(hooks: OmniHooks): void {
  for (const [name, hook] of Object.entries(hooks) as [string, Interceptable][]) {
    const registerOn = (h: Interceptable, hookName: string): void =>
      h.intercept({ register: ((tap: AnyTap) => wrapTap(tap, hookName)) as (tap: never) => unknown });
    if (typeof (hook as { for?: unknown }).for === 'function') {
      hook.intercept({
        factory: ((key: string, created: Interceptable) => {
          registerOn(created, `${name}(${key})`);
          return created;
        }) as (key: never, hook: never) => unknown,
      });
    } else {
      registerOn(hook, name);
    }
  }
}
