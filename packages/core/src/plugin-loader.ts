import { existsSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OmniError, type SourceLocation } from './errors.js';
import type { OmnistagePlugin } from './plugin.js';

/** A plugin to load: a module path (relative to `baseDir`) or an npm package name, with options. */
export interface PluginRequest {
  specifier: string;
  options?: Record<string, unknown>;
  /** Where it was named (the pipeline file's `plugins:` entry); attached to errors. */
  location?: SourceLocation;
}

/**
 * The second argument of a plugin factory: `baseDir` is the folder the plugin's own path was
 * resolved from — the pipeline file's folder (for `omnistage schema`, the working directory).
 * Resolve relative paths in options against it, as omnistage resolves paths in the pipeline file,
 * so a run behaves the same from any directory.
 */
export interface PluginFactoryContext {
  baseDir: string;
}

function isPath(specifier: string): boolean {
  return (
    specifier.startsWith('./') || specifier.startsWith('../') || isAbsolute(specifier) || specifier.startsWith('file:')
  );
}

function resolveSpecifier(specifier: string, baseDir: string): string {
  if (specifier.startsWith('file:')) return specifier;
  if (isPath(specifier)) return pathToFileURL(resolve(baseDir, specifier)).href;
  // Packages resolve from the pipeline's folder first (a project's own node_modules), then from
  // here (plugins installed next to omnistage).
  for (const from of [join(baseDir, 'noop.js'), import.meta.url]) {
    try {
      return pathToFileURL(createRequire(from).resolve(specifier)).href;
    } catch {
      // try the next base
    }
  }
  throw new Error(`cannot find package "${specifier}"`);
}

let coreResolutionRegistered = false;

/**
 * Makes `@omnistage/core` in plugins resolve to this running core (core-resolve-hook.ts), once per
 * process. From TypeScript sources (unit tests) there is no compiled hook and nothing to do.
 */
function registerCoreResolution(): void {
  if (coreResolutionRegistered) return;
  coreResolutionRegistered = true;
  const hook = new URL('./core-resolve-hook.js', import.meta.url);
  if (!existsSync(fileURLToPath(hook))) return;
  register(hook, { data: { coreParentURL: import.meta.url } });
}

/** The hint for a failed import: a missing package is named, with the command that installs it. */
function importFailureHint(err: unknown, specifier: string, baseDir: string): string | undefined {
  const e = (err ?? {}) as { code?: unknown; message?: unknown };
  if (e.code !== 'ERR_MODULE_NOT_FOUND' || typeof e.message !== 'string') return undefined;
  const missing = /Cannot find package '([^']+)' imported from (\S+)/.exec(e.message);
  if (!missing) return undefined;
  const [, pkg, from] = missing;
  if (isPath(specifier) || pkg !== specifier) {
    return `the plugin imports "${pkg}", which is not installed where the plugin is (${from}): npm install ${pkg} in that folder or one above it`;
  }
  return `install it (npm install ${specifier}) in ${baseDir} or a folder above it, or give a relative path such as ./my-plugin.js`;
}

/**
 * Imports plugin modules. A module exports its plugin as `default` (or `plugin`): either the plugin
 * object or a factory `(options, { baseDir }) => plugin` (see {@link PluginFactoryContext}).
 * Errors name the specifier and where it was written.
 */
export async function loadPlugins(requests: readonly PluginRequest[], baseDir: string): Promise<OmnistagePlugin[]> {
  const plugins: OmnistagePlugin[] = [];
  if (requests.length > 0) registerCoreResolution();
  for (const req of requests) {
    const fail = (message: string, cause?: unknown): OmniError =>
      new OmniError('OMNI_PLUGIN_INVALID', message, {
        location: req.location,
        cause,
        hint:
          importFailureHint(cause, req.specifier, baseDir) ??
          (isPath(req.specifier)
            ? `check the path (relative to ${baseDir}) and that the module exports its plugin as default`
            : `install it (npm install ${req.specifier}) or give a relative path such as ./my-plugin.js`),
      });
    let mod: Record<string, unknown>;
    try {
      mod = (await import(resolveSpecifier(req.specifier, baseDir))) as Record<string, unknown>;
    } catch (err) {
      throw fail(`plugin "${req.specifier}" could not be loaded: ${(err as Error).message}`, err);
    }
    const exported = mod.default ?? mod.plugin;
    let plugin: unknown = exported;
    if (typeof exported === 'function') {
      try {
        const context: PluginFactoryContext = { baseDir };
        plugin = await (exported as (o: Record<string, unknown>, c: PluginFactoryContext) => unknown)(
          req.options ?? {},
          context,
        );
      } catch (err) {
        throw fail(`plugin "${req.specifier}" failed to initialise with its options: ${(err as Error).message}`, err);
      }
    }
    const p = plugin as Partial<OmnistagePlugin> | undefined;
    if (!p || typeof p.name !== 'string' || typeof p.apply !== 'function') {
      throw fail(
        `module "${req.specifier}" does not export a plugin (an object with "name" and "apply", or a function returning one)`,
      );
    }
    plugins.push(p as OmnistagePlugin);
  }
  return plugins;
}
