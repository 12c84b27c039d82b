// User mistakes in assembly source are reported as AsmError values carrying the position, so a
// caller (the CLI, a test) can print "file:line:col: message" without a stack trace.

/** Where something is in the source: 1-based line and column. */
export interface SourcePos {
  line: number;
  column: number;
}

export class AsmError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The message without the "file:line:col: " prefix. */
  readonly reason: string;

  constructor(file: string, pos: SourcePos, reason: string) {
    super(`${file}:${pos.line}:${pos.column}: ${reason}`);
    this.name = 'AsmError';
    this.file = file;
    this.line = pos.line;
    this.column = pos.column;
    this.reason = reason;
  }
}

/**
 * Thrown inside the assembler where the file name is not known yet; assemble() turns it into an
 * AsmError with the file name.
 */
export class SourceError extends Error {
  constructor(
    readonly pos: SourcePos,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export function fail(pos: SourcePos, reason: string): never {
  throw new SourceError(pos, reason);
}

/** Levenshtein distance, for "did you mean" suggestions. */
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

/** The closest candidate within a small edit distance, or undefined. */
export function nearestName(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}
