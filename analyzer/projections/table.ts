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

/**
 * The SHA-256 (hex) of a projection's rows for one session, in primary-key order: the header
 * 'table(col,…)\n', then each row as SQLite's json_array(col, …) followed by '\n'. SQLite builds
 * the text a window of rows at a time (by the first key column when it is an integer). The rows
 * are read from `source` (the table itself unless told: a fold's TEMP copy before it is stored).
 */
export function digestOf(db: Database.Database, t: ProjectionTable, sessionId: number, source = t.name): { digest: string; rows: number } {
  const hash = createHash('sha256');
  hash.update(`${t.name}(${t.columns.map((c) => c.name).join(',')})\n`);
  const cols = t.columns.map((c) => c.name).join(', ');
  const first = t.key[0];
  const integerKey = t.columns.find((c) => c.name === first)?.type === 'INTEGER';
  const body = (where: string) =>
    db.prepare(`SELECT count(*), group_concat(j, char(10)) FROM (SELECT json_array(${cols}) AS j FROM ${source} WHERE session_id = ?${where} ORDER BY ${t.key.join(', ')})`).raw();
  let rows = 0;
  const add = (r: [number, string | null]) => {
    if (r[0] === 0) return;
    rows += r[0];
    hash.update(r[1]!);
    hash.update('\n');
  };
  if (!integerKey) add(body('').get(sessionId) as [number, string | null]);
  else {
    const [lo, hi] = db.prepare(`SELECT min(${first}), max(${first}) FROM ${source} WHERE session_id = ?`).raw().get(sessionId) as [number | null, number | null];
    const window = body(` AND ${first} >= ? AND ${first} < ?`);
    if (lo !== null && hi !== null) for (let k = lo; k <= hi; k += 1 << 16) add(window.get(sessionId, k, k + (1 << 16)) as [number, string | null]);
  }
  return { digest: hash.digest('hex'), rows };
}

/** Inserts a projection's rows, many per statement (fewer calls into SQLite); flush() at the end. */
export function rowWriter(db: Database.Database, t: ProjectionTable, sessionId: number): { add(row: unknown[]): void; flush(): void } {
  const cols = ['session_id', ...t.columns.map((c) => c.name)];
  const one = `(${cols.map(() => '?').join(', ')})`;
  const PER = 64;
  const single = db.prepare(`INSERT INTO ${t.name} (${cols.join(', ')}) VALUES ${one}`);
  const many = db.prepare(`INSERT INTO ${t.name} (${cols.join(', ')}) VALUES ${Array(PER).fill(one).join(', ')}`);
  const values: unknown[] = [];
  let n = 0;
  return {
    add(row) {
      values.push(sessionId);
      for (let i = 0; i < row.length; i++) values.push(row[i]);
      if (++n === PER) {
        many.run(values);
        values.length = 0;
        n = 0;
      }
    },
    flush() {
      const w = cols.length;
      for (let i = 0; i < n; i++) single.run(values.slice(i * w, (i + 1) * w));
      values.length = 0;
      n = 0;
    },
  };
}

/** A fold over the log: the rows of its table (values in `table.columns` order, without session_id). */
export type LogFold = (ctx: LogContext) => OperatorFunction<LogEvent, unknown[]>;

export type Rows = Observable<unknown[]>;
