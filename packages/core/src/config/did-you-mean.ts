/**
 * Suggestions for misspelt configuration keys and names ("did you mean `num_replicas`?").
 */

/** Inputs longer than this get no suggestion (the cost is quadratic in the length). */
const MAX_SUGGESTION_INPUT = 128;

/** Optimal string alignment distance: Levenshtein plus transposition of two adjacent characters. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  // Three rolling rows are enough for the transposition lookback.
  let prevPrev: number[] = [];
  let prev: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (prevPrev[j - 2] ?? 0) + 1);
      }
      cur.push(best);
    }
    prevPrev = prev;
    prev = cur;
  }
  return prev[b.length] ?? Math.max(a.length, b.length);
}

/**
 * The candidates close enough to `input` to be a likely typo, best first. Case and `-`/`_` are
 * ignored, so `Num-Replicas` still finds `num_replicas`; the allowed distance grows with the length so
 * short keys (`env`) do not attract everything.
 */
export function suggestions(input: string, candidates: Iterable<string>, max = 3): string[] {
  const norm = (s: string): string => s.toLowerCase().replace(/-/g, '_');
  const needle = norm(input);
  // Keys are short; comparing a huge string against every candidate would cost seconds for nothing.
  if (needle.length > MAX_SUGGESTION_INPUT) return [];
  const limit = Math.max(1, Math.floor(needle.length / 3));
  const scored: { candidate: string; distance: number }[] = [];
  for (const candidate of new Set(candidates)) {
    if (candidate === input) continue;
    const c = norm(candidate);
    const distance = editDistance(needle, c);
    // A key that only lacks or adds a prefix/suffix segment (`replicas` for `num_replicas`) is a
    // likely mix-up too, even when the plain distance is large.
    const affix =
      needle.length >= 4 &&
      c.length >= 4 &&
      (c.startsWith(needle) || c.endsWith(needle) || needle.startsWith(c) || needle.endsWith(c));
    if (distance <= limit || affix) scored.push({ candidate, distance });
  }
  scored.sort((x, y) => x.distance - y.distance || x.candidate.localeCompare(y.candidate));
  return scored.slice(0, max).map((s) => s.candidate);
}

/** `did you mean \`x\`?` for the best suggestion, or undefined when nothing is close. */
export function didYouMean(input: string, candidates: Iterable<string>): string | undefined {
  const [best] = suggestions(input, candidates, 1);
  return best === undefined ? undefined : `did you mean \`${best}\`?`;
}

/** `Did you mean \`x\`? ` (with a trailing space) ready to prefix a hint, or `''`. */
export function didYouMeanPrefix(input: string, candidates: Iterable<string>): string {
  const [best] = suggestions(input, candidates, 1);
  return best === undefined ? '' : `Did you mean \`${best}\`? `;
}
