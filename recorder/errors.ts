// A trace file that cannot be used as asked — not a trace, damaged, not writable there: the
// commands print its message as one line and exit 1.
export class TraceFileError extends Error {
  override name = 'TraceFileError';
}
