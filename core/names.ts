// "Did you mean …?": the one edit-distance search behind every suggestion for a mistyped name
// (a mnemonic, a guest export, a scenario, a structure, a system service).

/** Levenshtein distance (one row of the table at a time). */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

export interface NearestOptions {
  /** Compare without regard to case (the candidate is returned as spelled). */
  ignoreCase?: boolean;
  /** Allow up to max(2, ⌊length / per⌋) edits (default 3: a third of the word). */
  per?: number;
  /** nearestNames: the nearest candidates however far (for "nearest: …" lists that must name some). */
  anyDistance?: boolean;
}

/** The candidate closest to `word`, if it is close enough to be what was meant; else undefined. */
export function nearestName(word: string, candidates: Iterable<string>, options: NearestOptions = {}): string | undefined {
  const fold = options.ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  const w = fold(word);
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / (options.per ?? 3))) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(w, fold(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Up to `count` candidates close enough to `word` (the same limit as nearestName), nearest first;
 * equally near candidates keep their order in `candidates`.
 */
export function nearestNames(word: string, candidates: Iterable<string>, count: number, options: NearestOptions = {}): string[] {
  const fold = options.ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  const w = fold(word);
  const limit = options.anyDistance ? Infinity : Math.max(2, Math.floor(word.length / (options.per ?? 3)));
  return [...candidates]
    .map((name) => ({ name, distance: editDistance(w, fold(name)) }))
    .filter((c) => c.distance <= limit)
    .sort((a, b) => a.distance - b.distance) // stable: ties keep their order
    .slice(0, count)
    .map((c) => c.name);
}
