/**
 * "Did you mean …?" suggestions for misspelled configuration keys. Only used to phrase hints, so
 * it favours no suggestion over a wrong one.
 */

/** Levenshtein distance between two strings (insert, delete, substitute; each costs 1). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  // Two rolling rows keep this O(min) in memory; inputs are config keys, so speed is no concern.
  let prev = new Array<number>(b.length + 1);
  let curr = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    curr[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      curr[j] = Math.min((prev[j] ?? 0) + 1, (curr[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    [prev, curr] = [curr, prev];
  }
  return prev[b.length] ?? 0;
}

/**
 * The candidate closest to `name`, or undefined when none is close enough to be a plausible typo
 * (distance at most a third of the longer name, minimum 2). Case differences are ignored when
 * measuring, because `Num_Inference_Steps` is as much a typo as `num_inferense_steps`.
 */
export function didYouMean(name: string, candidates: Iterable<string>): string | undefined {
  const needle = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const d = editDistance(needle, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(2, Math.floor(Math.max(name.length, best.length) / 3));
  return bestDistance <= limit ? best : undefined;
}

/**
 * Hint for an unknown key: the close match when there is one, else the list of known keys of
 * `where` (e.g. `parallel_config`).
 */
export function unknownKeyHint(name: string, known: readonly string[], where: string): string {
  const suggestion = didYouMean(name, known);
  if (suggestion !== undefined) return `did you mean "${suggestion}"?`;
  return `remove it, or use one of the known keys of ${where}: ${known.join(', ')}`;
}
