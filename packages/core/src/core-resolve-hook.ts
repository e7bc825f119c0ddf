/**
 * Module resolution hook (registered by the plugin loader with `module.register`): a plugin's
 * `import '@omnistage/core'` (or a subpath) resolves to the core that is running, wherever the
 * plugin file lives. A plugin outside any project that installs omnistage would otherwise fail to
 * find the package — and one that found another copy would get a second instance, whose hooks
 * and classes the running orchestrator does not know.
 */
interface ResolveContext {
  parentURL?: string;
  conditions: string[];
  importAttributes: Record<string, string>;
}
type NextResolve = (specifier: string, context?: Partial<ResolveContext>) => Promise<{ url: string }>;

let coreParentURL: string | null = null;

/** `data.coreParentURL`: a module of the running core; the package resolves itself from there. */
export function initialize(data: { coreParentURL: string }): void {
  coreParentURL = data.coreParentURL;
}

export function resolve(
  specifier: string,
  context: ResolveContext,
  nextResolve: NextResolve,
): Promise<{ url: string }> {
  if (coreParentURL !== null && (specifier === '@omnistage/core' || specifier.startsWith('@omnistage/core/'))) {
    return nextResolve(specifier, { ...context, parentURL: coreParentURL });
  }
  return nextResolve(specifier, context);
}
