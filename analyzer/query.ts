// Read-only SQL over a trace file: one statement that returns rows, run on a read-only
// connection, its rows streamed out as a table, CSV, JSON or JSON lines as they come.
//
// What a query can use besides the file's tables and views (see `ntflow query FILE --schema`):
//   :session            the session chosen with --session (id or name; default the latest one)
//   sym(addr)           module!Name+0xOffset of a guest address in that session (NULL outside every module)
//   status_name(n)      the NTSTATUS name of n (STATUS_INVALID_HANDLE; 0x…-style hex when unknown)
//   service_name(n)     the Nt name of service number n (0xB7 → NtReadFile; NULL past the tables)
//   hex32(n)            n as 8 hex digits (8053a270), NULL stays NULL
// These functions exist only in ntflow's connection, not in other SQLite tools.
//
// Values: integers come out exactly (64-bit MSR values included: beyond ±2^53 they are printed as
// decimal text, and as JSON strings); blobs are shown as lowercase hex; NULL is NULL in tables,
// empty in CSV, null in JSON.
import type Database from 'better-sqlite3';
import { once } from 'node:events';
import { serviceByNumber, statusName, type SymbolTable } from '../core/index.js';
import { expandRunsSql, RUN_INDEX_SQL, TraceFileError, decodeRunEffects, effectsAt, type RunEffects } from '../recorder/index.js';
import { openWithProjections } from './replay.js';
import { displayOf, showNumber, type Display } from './display.js';
import { resolveSession, sessionSymbols } from './state.js';

/** A mistake in what the user asked (bad SQL, a writing statement, an unknown session): one line. */
export class QueryError extends Error {
  override name = 'QueryError';
}

export type QueryFormat = 'table' | 'csv' | 'json' | 'jsonl';
export const QUERY_FORMATS: readonly QueryFormat[] = ['table', 'csv', 'json', 'jsonl'];

/** Where rows are written: process.stdout, or anything with write() (tests collect strings). */
export interface Output {
  write(chunk: string): boolean | void;
  once?(event: string, listener: (...args: unknown[]) => void): unknown;
  on?(event: string, listener: (...args: unknown[]) => void): unknown;
}

export interface RunOptions {
  format?: QueryFormat;
  out?: Output;
  /** Rows the table format reads ahead to size its columns before streaming (default 500). */
  tableLookahead?: number;
  /** Tables show addresses, handles and NTSTATUS in decimal too (default: in hex, see display.ts). */
  decimal?: boolean;
}

const oneLine = (m: string) => m.split('\n')[0].trim();

/**
 * Open a trace for querying (read-only), its projections first brought up to date (built on first
 * use: `ntflow record` leaves them to the first reader; a session still recording, or a file on a
 * read-only mount, is folded for this connection only — see openWithProjections); a file that is
 * no trace is a one-line QueryError.
 */
export function openForQuery(file: string): Database.Database {
  try {
    return openWithProjections(file);
  } catch (e) {
    if (e instanceof TraceFileError) throw new QueryError(oneLine(e.message));
    throw e;
  }
}

/**
 * The session a query is about: --session as id or name, else the latest one; null when the file
 * holds no session and none was asked for (queries of meta and the schema still work).
 */
export function chooseSession(db: Database.Database, session?: string): number | null {
  if (session === undefined) {
    const last = db.prepare('SELECT max(id) FROM sessions').pluck().get() as number | null;
    return last ?? null;
  }
  try {
    return resolveSession(db, String(session).trim());
  } catch (e) {
    if (e instanceof TraceFileError) throw new QueryError(oneLine(e.message));
    throw e;
  }
}

/**
 * ntflow's SQL functions on this connection: sym(addr) (symbols of `sessionId`), status_name(n),
 * service_name(n), hex32(n), run_effects(effects, count, k) (the k-th instruction's effects of an
 * instruction_runs row); and the TEMP view instruction_effects(session_id, seq, effects).
 */
export function registerFunctions(db: Database.Database, sessionId: number | null): void {
  // Loaded now: a function cannot run statements while the query that calls it is iterating.
  const symbols: SymbolTable | null = sessionId === null ? null : sessionSymbols(db, sessionId);
  const table = () => symbols;
  const num = (v: unknown): number | null => (v === null || v === undefined ? null : typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : Number(v));
  db.function('sym', { deterministic: true, safeIntegers: true }, (addr: unknown) => {
    const a = num(addr);
    if (a === null || !Number.isFinite(a)) return null;
    return table()?.format(a >>> 0) ?? null;
  });
  db.function('status_name', { deterministic: true, safeIntegers: true }, (v: unknown) => {
    const n = num(v);
    return n === null || !Number.isFinite(n) ? null : statusName(n >>> 0);
  });
  db.function('service_name', { deterministic: true, safeIntegers: true }, (v: unknown) => {
    const n = num(v);
    return n === null ? null : serviceByNumber(n)?.name ?? null;
  });
  db.function('hex32', { deterministic: true, safeIntegers: true }, (v: unknown) => {
    const n = num(v);
    return n === null || !Number.isFinite(n) ? null : (n >>> 0).toString(16).padStart(8, '0');
  });
  // An instruction's effects from its run: the run's blob decoded once for all its instructions
  // (SQLite passes each call a fresh copy of the blob, so the last one is kept and compared).
  let lastBlob: Buffer | null = null;
  let lastRun: RunEffects | null = null;
  db.function('run_effects', { deterministic: true, safeIntegers: true }, (blob: unknown, count: unknown, k: unknown) => {
    const n = num(count);
    const i = num(k);
    if (!(blob instanceof Uint8Array) || n === null || i === null || i < 0 || i >= n) return null;
    if (!lastBlob || !lastBlob.equals(blob)) {
      lastRun = decodeRunEffects(blob, n);
      lastBlob = Buffer.from(blob);
    }
    const e = effectsAt(lastRun, i);
    return e ? Buffer.from(e) : null;
  });
  // The instructions' effects, beside the instructions view (which plain SQLite reads without them).
  db.exec(`CREATE TEMP VIEW IF NOT EXISTS instruction_effects AS
    SELECT r.session_id, r.seq + ${RUN_INDEX_SQL} AS seq, run_effects(r.effects, r.count, ${RUN_INDEX_SQL}) AS effects
    FROM main.instruction_runs r ${expandRunsSql('main')}`);
}

/** The first words of a statement, for messages ("INSERT INTO meta …"). */
function headOf(sql: string): string {
  const s = sql.replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ').replace(/\s+/g, ' ').trim();
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/**
 * Prepare one statement, refusing anything that is not a pure read: a statement that would write
 * (INSERT, UPDATE, DELETE, DROP, CREATE, PRAGMA assignments, VACUUM, …) or returns no rows
 * (ATTACH, DETACH, BEGIN, …). The connection is read-only as well; this check comes first so
 * nothing is even attempted.
 */
export function prepareReadOnly(db: Database.Database, sql: string): Database.Statement {
  if (sql.trim() === '') throw new QueryError('no SQL given (e.g. ntflow query FILE "SELECT * FROM sessions")');
  let stmt: Database.Statement;
  try {
    stmt = db.prepare(sql);
  } catch (e) {
    const msg = oneLine((e as Error).message);
    if (/more than one statement/.test(msg)) throw new QueryError('SQL error: give one statement at a time (the SQL holds more than one)');
    if ((e as { code?: string }).code?.startsWith('SQLITE_') || e instanceof RangeError || e instanceof TypeError) throw new QueryError(`SQL error: ${msg}`);
    throw e;
  }
  if (!stmt.readonly) {
    throw new QueryError(`query only reads: '${headOf(sql)}' would change the trace, so it was refused (the file is opened read-only; nothing was changed)`);
  }
  if (!stmt.reader) {
    throw new QueryError(
      `query runs one statement that returns rows (SELECT, WITH, VALUES, EXPLAIN, PRAGMA reads): '${headOf(sql)}' returns none, so it was refused (ATTACH, DETACH and transactions are not allowed)`,
    );
  }
  return stmt;
}

// ---- values -------------------------------------------------------------------------------

type Cell = null | number | bigint | string | Uint8Array;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Integers come as bigints (safeIntegers): those that fit a double become numbers. */
function normalize(v: unknown): Cell {
  if (typeof v === 'bigint') return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v;
  if (v === undefined) return null;
  return v as Cell;
}

const hexOf = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function textOf(v: Cell, nullText: string): string {
  if (v === null) return nullText;
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return hexOf(v);
  return String(v);
}

function jsonValue(v: Cell): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return hexOf(v);
  if (typeof v === 'number' && !Number.isFinite(v)) return null;
  return v;
}

function csvField(s: string): string {
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Column names unique for JSON objects: a repeated name gets :2, :3 … */
function uniqueNames(names: string[]): string[] {
  const seen = new Map<string, number>();
  return names.map((n) => {
    const k = (seen.get(n) ?? 0) + 1;
    seen.set(n, k);
    return k === 1 ? n : `${n}:${k}`;
  });
}

/**
 * Guest text made safe for a terminal: tabs and a carriage return not ending a line as \t and \r,
 * every other control character (C0, DEL, C1) as \xNN, so a program cannot move the cursor or
 * change colours in the summary.
 */
export function escapeGuestText(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => (c === '\t' ? '\\t' : c === '\r' ? '\\r' : c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/**
 * A report of several lines for a terminal (explain, diff): newlines and tabs are its layout and
 * stay; every other control character becomes \xNN (or \r), as escapeGuestText writes it. The
 * names inside were stored with their own newlines, which cannot be told from the layout's here.
 */
export function escapeReport(text: string): string {
  return text.split('\n').map((line) => line.split('\t').map(escapeGuestText).join('\t')).join('\n');
}

/**
 * Table cells: blobs longer than 32 bytes are cut, control characters escaped — a table is for a
 * terminal, where a session name's ESC or newline would recolour it or break the row (CSV and
 * JSON give both whole) — and integers shown as display.ts says (hex addresses, handles, NTSTATUS).
 */
function tableCell(v: Cell, display?: Display): string {
  if (v instanceof Uint8Array && v.length > 32) return `${hexOf(v.subarray(0, 32))}… (${v.length} bytes)`;
  if (display !== undefined && (typeof v === 'number' || typeof v === 'bigint') && (typeof v === 'bigint' || Number.isInteger(v))) return showNumber(v, display);
  return escapeGuestText(textOf(v, 'NULL'));
}

// ---- writing ------------------------------------------------------------------------------

const guarded = new WeakSet<object>();
/** A closed pipe (ntflow query … | head) ends the output quietly instead of crashing. */
class Sink {
  private buf = '';
  broken = false;
  /** A write error other than EPIPE (ENOSPC on > /dev/full): the next flush reports it. */
  private failure: unknown = null;
  private readonly onError = (e: unknown) => {
    if ((e as { code?: string }).code === 'EPIPE') this.broken = true;
    else this.failure ??= e;
  };
  constructor(private readonly out: Output) {
    if (out.on && !guarded.has(out)) {
      guarded.add(out);
      // Every Sink's own listener reports the error; this one only keeps an 'error' event with
      // no Sink left listening from crashing the process.
      out.on('error', () => {});
    }
    out.on?.('error', this.onError);
  }
  write(s: string): void {
    this.buf += s;
  }
  get pending(): number {
    return this.buf.length;
  }
  /** Hand the buffered text to the output, waiting for it to drain when it asks to. */
  async flush(): Promise<void> {
    this.throwFailure();
    if (this.buf === '' || this.broken) {
      this.buf = '';
      return;
    }
    const s = this.buf;
    this.buf = '';
    let ok: boolean | void = true;
    try {
      ok = this.out.write(s);
    } catch (e) {
      if ((e as { code?: string }).code === 'EPIPE') this.broken = true;
      else this.failure ??= e;
    }
    if (ok === false && this.out.once && !this.broken && !this.failure) await Promise.race([once(this.out as never, 'drain'), once(this.out as never, 'close')]);
    else await new Promise((r) => setImmediate(r)); // let a pipe's EPIPE arrive
    this.throwFailure();
  }
  private throwFailure(): void {
    if (this.failure) throw new QueryError(`cannot write the output: ${oneLine((this.failure as Error).message)}`);
  }
  close(): void {
    (this.out as { off?: (e: string, l: unknown) => void }).off?.('error', this.onError);
  }
}

const CHUNK = 1 << 16;

function sqlError(e: unknown): never {
  const msg = oneLine((e as Error).message);
  if (/parameter/i.test(msg) && e instanceof RangeError) {
    throw new QueryError(`SQL error: ${msg} (the only parameters are :session${msg.includes('syscall') ? ' and :syscall' : ''}; write values into the SQL)`);
  }
  // SQLite's whole message when load_extension() is called with extension loading off.
  if (msg === 'not authorized') throw new QueryError('SQL error: not authorized (load_extension and anything else reaching outside the trace is disabled; query only reads the trace)');
  if ((e as { code?: string }).code?.startsWith('SQLITE_') || e instanceof RangeError || e instanceof TypeError) throw new QueryError(`SQL error: ${msg}`);
  throw e;
}

/**
 * Run a prepared read-only statement and stream its rows to `out` in the format asked for.
 * Resolves with the number of rows written.
 */
export async function streamRows(stmt: Database.Statement, params: Record<string, unknown>, options: RunOptions = {}): Promise<number> {
  const format = options.format ?? 'table';
  const sink = new Sink(options.out ?? process.stdout);
  const lookahead = options.tableLookahead ?? 500;
  let iter: IterableIterator<unknown[]>;
  let names: string[];
  let displays: (Display | undefined)[];
  try {
    stmt.safeIntegers(true);
    stmt.raw(true);
    const columns = stmt.columns();
    names = columns.map((c) => c.name);
    displays = columns.map((c) => (format === 'table' && !options.decimal ? displayOf(c) : undefined));
    iter = stmt.iterate(params) as IterableIterator<unknown[]>;
  } catch (e) {
    sqlError(e);
  }
  const next = (): Cell[] | null => {
    let r: IteratorResult<unknown[]>;
    try {
      r = iter.next();
    } catch (e) {
      sqlError(e);
    }
    return r.done ? null : r.value.map(normalize);
  };
  let count = 0;
  try {
    if (format === 'csv') {
      sink.write(names.map(csvField).join(',') + '\n');
      for (let row = next(); row; row = next()) {
        sink.write(row.map((v) => csvField(textOf(v, ''))).join(',') + '\n');
        count++;
        if (sink.pending >= CHUNK) {
          await sink.flush();
          if (sink.broken) return count;
        }
      }
    } else if (format === 'json' || format === 'jsonl') {
      const keys = uniqueNames(names);
      const obj = (row: Cell[]) => {
        const o: Record<string, unknown> = {};
        keys.forEach((k, i) => (o[k] = jsonValue(row[i])));
        return JSON.stringify(o);
      };
      if (format === 'json') sink.write('[');
      for (let row = next(); row; row = next()) {
        if (format === 'json') sink.write(count === 0 ? '\n' : ',\n');
        sink.write(obj(row));
        if (format === 'jsonl') sink.write('\n');
        count++;
        if (sink.pending >= CHUNK) {
          await sink.flush();
          if (sink.broken) return count;
        }
      }
      if (format === 'json') sink.write(count === 0 ? ']\n' : '\n]\n');
    } else {
      // A table: read ahead a bounded number of rows to size the columns, then stream with those
      // widths (a longer value later just widens its own line).
      const ahead: Cell[][] = [];
      let exhausted = false;
      while (ahead.length < lookahead) {
        const row = next();
        if (!row) {
          exhausted = true;
          break;
        }
        ahead.push(row);
      }
      const numeric = names.map((_, i) => ahead.some((r) => r[i] !== null) && ahead.every((r) => r[i] === null || typeof r[i] === 'number' || typeof r[i] === 'bigint'));
      const cells = (row: Cell[]) => row.map((v, i) => tableCell(v, displays[i]));
      const widths = names.map((n, i) => Math.max(n.length, ...ahead.map((r) => tableCell(r[i], displays[i]).length)));
      const line = (cells: string[]) => cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd() + '\n';
      sink.write(line(names));
      sink.write(line(widths.map((w) => '-'.repeat(w))));
      const emit = async (row: Cell[]) => {
        sink.write(line(cells(row)));
        count++;
        if (sink.pending >= CHUNK) await sink.flush();
      };
      for (const row of ahead) {
        await emit(row);
        if (sink.broken) return count;
      }
      if (!exhausted) {
        for (let row = next(); row; row = next()) {
          await emit(row);
          if (sink.broken) return count;
        }
      }
      sink.write(`(${count} row${count === 1 ? '' : 's'})\n`);
    }
    await sink.flush();
    return count;
  } finally {
    try {
      (iter as { return?: () => unknown }).return?.();
    } catch {
      /* already finished */
    }
    sink.close();
  }
}

export interface QueryOptions extends RunOptions {
  /** --session: an id or a name (default: the latest session). */
  session?: string;
}

/** `ntflow query FILE "SQL"`: run one read-only statement; resolves with the row count. */
export async function runQuery(file: string, sql: string, options: QueryOptions = {}): Promise<number> {
  const db = openForQuery(file);
  try {
    const session = chooseSession(db, options.session);
    registerFunctions(db, session);
    const stmt = prepareReadOnly(db, sql);
    return await streamRows(stmt, { session }, options);
  } finally {
    db.close();
  }
}

/** `ntflow query FILE --schema`: the documented schema, as the file itself holds it. */
export function schemaText(db: Database.Database, file: string): string {
  const meta = new Map((db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
  const rows = db
    .prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, rowid")
    .all() as { type: string; name: string; sql: string }[];
  const tables = rows.filter((r) => r.type === 'table').map((r) => r.name);
  const views = rows.filter((r) => r.type === 'view').map((r) => r.name);
  const out: string[] = [
    `-- ${file}: ntflow trace schema ${meta.get('schema_version') ?? '?'} (created by ntflow ${meta.get('created_by') ?? '?'})`,
    `-- tables: ${tables.join(', ')}`,
    `-- views: ${views.join(', ')}`,
    '-- in ntflow query: :session is the --session id (default the latest); functions sym(addr), status_name(n), service_name(n), hex32(n), run_effects(effects, count, k); the view instruction_effects(session_id, seq, effects)',
  ];
  // Projections this command folded itself (a session still recording, a read-only file).
  const live = db.prepare("SELECT 1 FROM temp.sqlite_master WHERE name = 'live_projections'").get()
    ? (db.prepare('SELECT DISTINCT session_id FROM temp.live_projections ORDER BY 1').pluck().all() as number[])
    : [];
  if (live.length) out.push(`-- the projections of session ${live.join(', ')} are folded by each reading command itself (still recording, or the file cannot be written): not stored in the file`);
  out.push('');
  for (const r of rows) out.push(`${r.sql};`, '');
  return out.join('\n');
}

/** Tables and views of the file, by name, and the projections this connection folded itself. */
export function tableNames(db: Database.Database): Set<string> {
  return new Set(
    db.prepare("SELECT name FROM main.sqlite_master WHERE type IN ('table', 'view') UNION SELECT name FROM temp.sqlite_master WHERE type = 'view'").pluck().all() as string[],
  );
}
