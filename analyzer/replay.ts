// Replay: rebuild a session's projections from its log — truncate them and fold the log again.
//
// One read of the log feeds every projection: the log is a connectable Observable; each projection
// subscribes its own fold (its state lives in that subscription), then the log is connected and
// streams once, synchronously. Each projection's rows go to its table through one prepared
// statement. The whole rebuild of a session — truncation, rows, digests, `projections` rows — is
// one transaction: a reader sees the old projections or the new ones, never a mix. (STYLE 11 asks
// for a transaction per projection; one per session is the same guarantee, stronger, and lets the
// log be read once for all of them.)
import type Database from 'better-sqlite3';
import { connectable, map, share, Subject, type Observable } from 'rxjs';
import { openTraceForReading, openTraceForWriting, TraceFileError } from '../recorder/index.js';
import { foldCalls, CALLS } from './projections/calls.js';
import { makeContext, readLog } from './projections/log.js';
import { foldRingSpans, RING_SPANS } from './projections/ring-spans.js';
import { foldSyscallArgs, SYSCALL_ARGS } from './projections/syscall-args.js';
import { foldSyscalls, syscallRow, SYSCALLS } from './projections/syscalls.js';
import { symbolRows, SYMBOLS } from './projections/symbols.js';
import { digestOf, rowWriter, tableSql, type Projection, type ProjectionTable } from './projections/table.js';
import { buildFindings, FINDINGS, HOOKS } from './findings/index.js';

/** The projections a replay builds, in the order their results are reported. */
export const PROJECTIONS: readonly Projection[] = [SYSCALLS, SYSCALL_ARGS, CALLS, RING_SPANS, SYMBOLS, FINDINGS, HOOKS];

export const PROJECTIONS_TABLE: ProjectionTable = {
  name: 'projections',
  comment: 'one row per projection and session: how far it has folded the log and a digest of its rows (rebuilding from the log gives the same digest)',
  columns: [
    { name: 'name', type: 'TEXT', notNull: true, comment: "the projection (its table's name: 'syscalls', 'calls', …)" },
    { name: 'version', type: 'INTEGER', notNull: true, comment: "the version of its fold's rules (a digest of another version is not comparable)" },
    { name: 'last_seq', type: 'INTEGER', notNull: true, comment: 'the last event folded (-1 for an empty log)' },
    {
      name: 'digest',
      type: 'TEXT',
      notNull: true,
      comment: "SHA-256 (hex) of the projection's rows for the session in primary-key order, without session_id: the header 'table(col,…)' and a newline, then each row as SQLite's json_array(col, …) and a newline",
    },
    { name: 'rows', type: 'INTEGER', notNull: true, comment: 'how many rows it has for the session' },
  ],
  key: ['name'],
};

/** Every CREATE statement the analyzer adds to a trace file (IF NOT EXISTS), documented. */
export function projectionSchemaSql(): string[] {
  return [...PROJECTIONS.map((p) => tableSql(p.table)), tableSql(PROJECTIONS_TABLE)];
}

export interface ReplayProgress {
  sessionId: number;
  /** Events folded so far, of `total`. */
  events: number;
  total: number;
  seconds: number;
}

export interface ReplayOptions {
  /** Called after each window of about 65 536 events. */
  onProgress?: (p: ReplayProgress) => void;
}

export interface ProjectionResult {
  name: string;
  rows: number;
  digest: string;
  lastSeq: number;
}

export interface ReplayResult {
  sessionId: number;
  projections: ProjectionResult[];
  /** Events folded. */
  events: number;
  seconds: number;
}

/** A replay the user asked for wrongly (no such session): one line, exit 1. */
export class ReplayInputError extends Error {
  override name = 'ReplayInputError';
}

function ensureTables(db: Database.Database): void {
  for (const sql of projectionSchemaSql()) db.exec(sql);
}

/** Rebuild every projection of one session from its log (the db must be open for writing). */
export function replaySession(db: Database.Database, sessionId: number, options: ReplayOptions = {}): ReplayResult {
  const started = performance.now();
  if (!db.prepare('SELECT 1 FROM sessions WHERE id = ?').get(sessionId)) {
    const ids = (db.prepare('SELECT id FROM sessions ORDER BY id').pluck().all() as number[]).join(', ');
    throw new ReplayInputError(`no session ${sessionId} in ${db.name}${ids ? ` (sessions: ${ids})` : ' (it has no sessions)'}`);
  }
  ensureTables(db);
  return db.transaction((): ReplayResult => {
    for (const p of [...PROJECTIONS, { table: PROJECTIONS_TABLE }]) db.prepare(`DELETE FROM ${p.table.name} WHERE session_id = ?`).run(sessionId);
    const ctx = makeContext(db, sessionId);
    const total = ctx.events;
    const progress = options.onProgress;
    const log$ = connectable(
      readLog(ctx, progress ? (done) => progress({ sessionId, events: done, total, seconds: (performance.now() - started) / 1000 }) : undefined),
      { connector: () => new Subject(), resetOnDisconnect: false },
    );
    const records$ = log$.pipe(foldSyscalls(ctx), share());
    const outputs: [Projection, Observable<unknown[]>][] = [
      [SYSCALLS, records$.pipe(map(syscallRow))],
      [SYSCALL_ARGS, records$.pipe(foldSyscallArgs())],
      [CALLS, log$.pipe(foldCalls(ctx))],
      [RING_SPANS, log$.pipe(foldRingSpans(ctx))],
      [SYMBOLS, symbolRows(ctx)],
    ];
    let failure: unknown = null;
    const subs = outputs.map(([p, rows$]) => {
      const writer = rowWriter(db, p.table, sessionId);
      // A write that throws (a damaged file, a full disk) is kept for the throw below: thrown from
      // next, rxjs would rethrow it later from a timer, past every catch, as a stack trace.
      const guard = (write: () => void) => {
        if (failure) return;
        try {
          write();
        } catch (err) {
          failure ??= err;
        }
      };
      return rows$.subscribe({
        next: (row) => guard(() => writer.add(row)),
        error: (err) => {
          failure ??= err;
        },
        complete: () => guard(() => writer.flush()),
      });
    });
    log$.connect();
    for (const s of subs) s.unsubscribe();
    if (failure) throw failure;

    // The findings read the rows just written (calls, their arguments) and the typed events.
    const found = buildFindings(db, sessionId);
    for (const [p, rows] of [[FINDINGS, found.findings], [HOOKS, found.hooks]] as const) {
      const writer = rowWriter(db, p.table, sessionId);
      for (const row of rows) writer.add(row);
      writer.flush();
    }

    const lastSeq = total - 1;
    const insertProjection = db.prepare('INSERT INTO projections (session_id, name, version, last_seq, digest, rows) VALUES (?, ?, ?, ?, ?, ?)');
    const projections = PROJECTIONS.map((p) => {
      const { digest, rows } = digestOf(db, p.table, sessionId);
      insertProjection.run(sessionId, p.name, p.version, lastSeq, digest, rows);
      return { name: p.name, rows, digest, lastSeq };
    });
    return { sessionId, projections, events: total, seconds: (performance.now() - started) / 1000 };
  })();
}

/** Open a trace for writing and rebuild the projections of one session (`session`) or of all. */
export function replayFile(path: string, options: ReplayOptions & { session?: number } = {}): ReplayResult[] {
  const db = openTraceForWriting(path, { mustExist: true });
  try {
    const ids = db.prepare('SELECT id FROM sessions ORDER BY id').pluck().all() as number[];
    if (options.session !== undefined) {
      if (!Number.isSafeInteger(options.session) || !ids.includes(options.session)) {
        throw new ReplayInputError(`no session ${options.session} in ${path}${ids.length ? ` (sessions: ${ids.join(', ')})` : ' (it has no sessions)'}`);
      }
      return [replaySession(db, options.session, options)];
    }
    if (ids.length === 0) throw new ReplayInputError(`${path} has no sessions; record one with 'ntflow record <scenario> -o ${path}'`);
    return ids.map((id) => replaySession(db, id, options));
  } finally {
    db.close();
  }
}


/**
 * Sessions whose projections are missing or behind their log: never built (`ntflow record` leaves
 * them to the first reader), folded by an older version of a projection's rules, or folded before
 * the log grew (a recording still under way when they were built).
 */
export function staleSessions(db: Database.Database): number[] {
  const sessions = db.prepare('SELECT id, events FROM sessions ORDER BY id').raw().all() as [number, number][];
  const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'projections'").get();
  if (!hasTable) return sessions.map(([id]) => id);
  const built = db.prepare('SELECT name, version, last_seq FROM projections WHERE session_id = ?').raw();
  const lastMark = db.prepare('SELECT max(seq) FROM event_marks WHERE session_id = ?').pluck();
  const lastInstruction = db.prepare('SELECT max(seq) FROM instruction_log WHERE session_id = ?').pluck();
  return sessions
    .filter(([id, events]) => {
      const rows = built.all(id) as [string, number, number][];
      const extent = Math.max(events, ((lastMark.get(id) as number | null) ?? -1) + 1, ((lastInstruction.get(id) as number | null) ?? -1) + 1);
      return PROJECTIONS.some((p) => {
        const row = rows.find(([name]) => name === p.name);
        return !row || row[1] !== p.version || row[2] !== extent - 1;
      });
    })
    .map(([id]) => id);
}

/**
 * Bring every session's projections up to date before reading them; returns the sessions rebuilt.
 * A file this process may not write (read-only on disk, locked) is left as it is: its recording
 * tables still answer, and a query of a missing projection says how to build it.
 */
export function ensureProjections(path: string, options: ReplayOptions = {}): number[] {
  const reader = openTraceForReading(path);
  let stale: number[];
  try {
    stale = staleSessions(reader);
  } finally {
    reader.close();
  }
  if (stale.length === 0) return [];
  const cannotWrite = (e: unknown) =>
    e instanceof TraceFileError || /^SQLITE_(READONLY|BUSY|LOCKED|CANTOPEN|PERM)/.test(String((e as { code?: unknown }).code ?? ''));
  const rebuilt: number[] = [];
  let db: Database.Database | null = null;
  try {
    db = openTraceForWriting(path, { mustExist: true });
    for (const id of stale) {
      replaySession(db, id, options);
      rebuilt.push(id);
    }
  } catch (e) {
    if (!cannotWrite(e)) throw e;
  } finally {
    db?.close();
  }
  return rebuilt;
}
