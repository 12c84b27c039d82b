// The export tests' shared setup: one trace with the three scenarios the exporters must handle
// (osr-log-user-handle: two threads, a work item, failed calls; user-apc: an APC delivery;
// kernel-zw-readfile: a driver's Zw call), recorded once per test file with the real CLI, and an
// exporter run into memory.
import { join } from 'node:path';
import { ntflow } from './cli.js';
import { openForQuery, chooseSession } from '../../analyzer/index.js';
import { EXPORTERS, type ExportFormat, type ExportStats } from '../../export/index.js';

export const EXPORT_SCENARIOS = ['osr-log-user-handle', 'user-apc', 'kernel-zw-readfile'] as const;

/** Records the scenarios into `dir`/export.db (sessions 1, 2, 3 in EXPORT_SCENARIOS order). */
export async function recordExportTrace(dir: string): Promise<string> {
  const trace = join(dir, 'export.db');
  for (const s of EXPORT_SCENARIOS) {
    const r = await ntflow(['record', s, '-o', trace]);
    if (r.code !== 0) throw new Error(`record ${s}: ${r.stderr}`);
  }
  return trace;
}

export interface Exported {
  bytes: Buffer;
  stats: ExportStats;
}

/** Runs one exporter on a session (by name) of the trace, into memory. */
export function exportToBuffer(trace: string, format: ExportFormat, session: string, syscallId?: number): Exported {
  const db = openForQuery(trace);
  try {
    const sessionId = chooseSession(db, session)!;
    const chunks: Buffer[] = [];
    const stats = EXPORTERS[format]!({ db, sessionId, syscallId }, { write: (c) => chunks.push(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c)) });
    return { bytes: Buffer.concat(chunks), stats };
  } finally {
    db.close();
  }
}

/** Runs a read-only query on the trace (the tests' expected values come from the trace itself). */
export function queryTrace<T>(trace: string, sql: string, ...params: unknown[]): T[] {
  const db = openForQuery(trace);
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}
