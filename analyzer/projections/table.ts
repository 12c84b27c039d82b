// A projection: its table (every column documented where it is declared, so the trace file carries
// the documentation, as recorder/schema.ts does for the log) and its fold over the log. The digest
// of a projection is a SHA-256 over its rows in primary-key order, without session_id, so two
// rebuilds — or two recordings of the same program — give the same digest.
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import type { Observable, OperatorFunction } from 'rxjs';
import type { LogContext, LogEvent } from './log.js';

export interface ProjectionColumn {
  name: string;
  type: 'INTEGER' | 'TEXT';
  comment: string;
  notNull?: boolean;
}

export interface ProjectionTable {
  name: string;
  comment: string;
  /** The columns after session_id, in the order the fold's rows list them. */
  columns: ProjectionColumn[];
  /** Primary key columns after session_id: the canonical order of the rows. */
  key: string[];
}

/** A projection: a table and a fold that turns the log (or its inputs) into the table's rows. */
export interface Projection {
  name: string;
  /** Bump when the fold's rules change: a stored digest of another version is not comparable. */
  version: number;
  table: ProjectionTable;
}

const SESSION: ProjectionColumn = { name: 'session_id', type: 'INTEGER', notNull: true, comment: 'the session (sessions.id)' };

/** CREATE TABLE IF NOT EXISTS, every column with its comment. */
export function tableSql(t: ProjectionTable): string {
  const cols = [SESSION, ...t.columns];
  return [
    `CREATE TABLE IF NOT EXISTS ${t.name} (`,
    `  -- ${t.comment}`,
    ...cols.map((c) => `  ${c.name} ${c.type}${c.notNull ? ' NOT NULL' : ''}, -- ${c.comment}`),
    `  PRIMARY KEY (session_id, ${t.key.join(', ')})`,
    ') WITHOUT ROWID',
  ].join('\n');
}

/** The SHA-256 (hex) of a projection's rows for one session, in primary-key order. */
export function digestOf(db: Database.Database, t: ProjectionTable, sessionId: number): { digest: string; rows: number } {
  const hash = createHash('sha256');
  hash.update(`${t.name}(${t.columns.map((c) => c.name).join(',')})\n`);
  let rows = 0;
  const stmt = db.prepare(`SELECT ${t.columns.map((c) => c.name).join(', ')} FROM ${t.name} WHERE session_id = ? ORDER BY ${t.key.join(', ')}`).raw();
  for (const row of stmt.iterate(sessionId) as IterableIterator<unknown[]>) {
    hash.update(JSON.stringify(row));
    hash.update('\n');
    rows++;
  }
  return { digest: hash.digest('hex'), rows };
}

/** A fold over the log: the rows of its table (values in `table.columns` order, without session_id). */
export type LogFold = (ctx: LogContext) => OperatorFunction<LogEvent, unknown[]>;

export type Rows = Observable<unknown[]>;
