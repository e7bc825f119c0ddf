import { suggestions } from '@omnistage/core';

/**
 * Hint for an unknown key: the close match when there is one (core's one did-you-mean rule), else
 * the list of known keys of `where` (e.g. `parallel_config`).
 */
export function unknownKeyHint(name: string, known: readonly string[], where: string): string {
  const [suggestion] = suggestions(name, known, 1);
  if (suggestion !== undefined) return `did you mean "${suggestion}"?`;
  return `remove it, or use one of the known keys of ${where}: ${known.join(', ')}`;
}
