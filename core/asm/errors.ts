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
