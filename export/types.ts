// export/ contract: a recorded session written in a format another tool opens (Perfetto, the
// Chrome JSON trace viewer, speedscope, Mermaid). Each format is an Exporter: it reads the
// session's projections and log from an open trace and writes to a sink as it goes, so a large
// session never becomes one string in memory.
import type Database from 'better-sqlite3';

export type ExportFormat = 'perfetto' | 'chrome-json' | 'speedscope' | 'mermaid';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['perfetto', 'chrome-json', 'speedscope', 'mermaid'];

export interface ExportRequest {
  /** An open trace (read-only is enough); the session's projections (calls, syscalls, findings) are built. */
  db: Database.Database;
  sessionId: number;
  /** --syscall: only this call (syscalls.id of the session) and what ran inside it. */
  syscallId?: number;
}

/** Where an exporter writes: text or bytes, in order, synchronously. */
export interface ExportSink {
  write(chunk: string | Uint8Array): void;
}

export interface ExportStats {
  format: ExportFormat;
  /** What was written, counted the format's way (slices, events, frames, messages). */
  items: number;
  /** What was left out and why (an elided Mermaid diagram, events beyond a limit); empty when nothing. */
  notes: string[];
}

export type Exporter = (req: ExportRequest, sink: ExportSink) => ExportStats;

/** A user mistake in an export request (unknown syscall id, nothing to export): a one-line CLI error. */
export class ExportInputError extends Error {
  override name = 'ExportInputError';
}
