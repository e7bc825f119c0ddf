import { OmniError, isOmniError } from '../errors.js';
import type { OmniHooks } from './hooks.js';

interface AnyTap {
  name: string;
  type: 'sync' | 'async' | 'promise';
  fn: (...args: unknown[]) => unknown;
}

interface Interceptable {
  intercept(interceptor: { register?: (tap: never) => unknown; factory?: (key: never, hook: never) => unknown }): void;
}

/**
 * Makes any error thrown by a plugin's tap name the plugin (tap name) and the hook. OmniErrors a
 * plugin throws on purpose (a config error with a location) keep their code and gain the context;
 * anything else becomes OMNI_PLUGIN_FAILED, so a user sees which plugin broke, not a stack trace.
 */
export function annotatePluginError(err: unknown, plugin: string, hook: string): OmniError {
  if (isOmniError(err)) {
    err.context.plugin ??= plugin;
    err.context.hook ??= hook;
    return err;
  }
  const message = err instanceof Error ? err.message : String(err);
  return new OmniError('OMNI_PLUGIN_FAILED', `plugin "${plugin}" failed in hook "${hook}": ${message}`, {
    cause: err,
    context: { plugin, hook },
    hint: `this is a bug in plugin "${plugin}" or in how it is configured; run with --log-format json to see the stack`,
  });
}

function wrapTap(tap: AnyTap, hookName: string): AnyTap {
  const fn = tap.fn;
  const wrap = (e: unknown): OmniError => annotatePluginError(e, tap.name, hookName);
  if (tap.type === 'promise') {
    tap.fn = (...args) => {
      try {
        return Promise.resolve(fn(...args)).catch((e: unknown) => {
          throw wrap(e);
        });
      } catch (e) {
        return Promise.reject(wrap(e));
      }
    };
  } else if (tap.type === 'sync') {
    tap.fn = (...args) => {
      try {
        return fn(...args);
      } catch (e) {
        throw wrap(e);
      }
    };
  } else {
    tap.fn = (...args) => {
      const callback = args.pop() as (err?: unknown, result?: unknown) => void;
      try {
        fn(...args, (err: unknown, result: unknown) => callback(err ? wrap(err) : err, result));
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
