// Replay: rebuild a session's projections from its log — truncate them and fold the log again.
//
// One read of the log feeds every projection: the log is a connectable Observable; each projection
// subscribes its own fold (its state lives in that subscription), then the log is connected and
// streams once, synchronously. Each projection's rows go to its table through one prepared
// statement — into the connection's TEMP schema first (temp.live_*), then, to store them, copied
// into the file's tables in one short transaction: a reader sees the old projections or the new
// ones, never a mix, and no one waits for the fold itself. (STYLE 11 asks for a transaction per
// projection; one per session is the same guarantee, stronger, and lets the log be read once.)
//
// Readers and a recording at once (issue K §5): a session still recording ('incomplete') is never
// stored by a reader — every reading command folds it into its own TEMP tables, behind TEMP views
// named like the file's tables (SQLite looks in temp before main, so every query, the user's SQL
// included, reads them as if stored), from the log as committed when it starts. The same holds
// for a file this process may not write (a read-only mount). Finished sessions are stored as
// before, by the first reader that may write. A recorder thus never waits for a fold; it waits
// (up to a bound, recorder/writer.ts) only for another writer's short transaction.
import type Database from 'better-sqlite3';
import { connectable, map, share, Subject, type Observable } from 'rxjs';
import { InstructionRuns, openTraceForReading, openTraceForWriting, traceName, TraceFileError } from '../recorder/index.js';
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
  comment:
    "one row per projection and session: how far it has folded the log and a digest of its rows (rebuilding from the log gives the same digest); a session still recording ('incomplete') gets none from readers: each reading command folds it for itself, writing nothing to the file",
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
  /**
   * Fold quiet instructions a stretch at a time (readLog's `stretches`; the default). false folds
   * every instruction on its own: the same projections, slower (tests compare the two).
   */
  stretches?: boolean;
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

/** Every table a replay fills: the projections' and the `projections` table itself. */
const ALL_TABLES: readonly ProjectionTable[] = [...PROJECTIONS.map((p) => p.table), PROJECTIONS_TABLE];

/**
 * The connection-private copy of a table a fold writes into first (in the TEMP schema: a
 * connection opened read-only may still write there, and the file is not touched).
 */
const liveName = (t: ProjectionTable) => `temp.live_${t.name}`;

/**
 * Make this connection's names of the projection tables (TEMP views, which SQLite finds before the
 * file's tables of the same name) show the file's rows for every session but `folded`, and the
 * connection's own folds (temp.live_*) for those. Nothing is written to the file.
 */
function installLiveViews(db: Database.Database, folded: readonly number[]): void {
  for (const t of ALL_TABLES) {
    db.exec(tableSql({ ...t, name: liveName(t) }));
    const cols = ['session_id', ...t.columns.map((c) => c.name)].join(', ');
    const inFile = db.prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?").get(t.name);
    const ids = folded.map((id) => Math.trunc(id)).join(', ');
    const own = `SELECT ${cols} FROM ${liveName(t)}`;
    db.exec(`DROP VIEW IF EXISTS temp.${t.name}`);
    db.exec(`CREATE TEMP VIEW ${t.name} AS ${inFile ? `SELECT ${cols} FROM main.${t.name} WHERE session_id NOT IN (${ids}) UNION ALL ` : ''}${own}`);
  }
}

/** Drop what installLiveViews made: the connection sees the file's tables again. */
function dropLiveViews(db: Database.Database): void {
  for (const t of ALL_TABLES) {
    db.exec(`DROP VIEW IF EXISTS temp.${t.name}`);
    db.exec(`DROP TABLE IF EXISTS ${liveName(t)}`);
  }
}

function checkSession(db: Database.Database, sessionId: number): void {
  if (!db.prepare('SELECT 1 FROM sessions WHERE id = ?').get(sessionId)) {
    const ids = (db.prepare('SELECT id FROM sessions ORDER BY id').pluck().all() as number[]).join(', ');
    throw new ReplayInputError(`no session ${sessionId} in ${traceName(db)}${ids ? ` (sessions: ${ids})` : ' (it has no sessions)'}`);
  }
}

/**
 * Fold one session's log into this connection's temp.live_* tables (installLiveViews first). One
 * transaction that writes only the TEMP schema: it reads the file as one snapshot and takes no
 * lock a recorder would wait for.
 */
function foldSession(db: Database.Database, sessionId: number, options: ReplayOptions): ReplayResult {
  const started = performance.now();
  return db.transaction((): ReplayResult => {
    for (const t of ALL_TABLES) db.prepare(`DELETE FROM ${liveName(t)} WHERE session_id = ?`).run(sessionId);
    const ctx = makeContext(db, sessionId);
    const total = ctx.events;
    const progress = options.onProgress;
    const log$ = connectable(
      readLog(ctx, progress ? (done) => progress({ sessionId, events: done, total, seconds: (performance.now() - started) / 1000 }) : undefined, { stretches: options.stretches ?? true }),
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
      const writer = rowWriter(db, { ...p.table, name: liveName(p.table) }, sessionId);
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

    // The findings read the rows just folded (calls, their arguments: through the live views)
    // and the typed events.
    const found = buildFindings(db, sessionId);
    for (const [p, rows] of [[FINDINGS, found.findings], [HOOKS, found.hooks]] as const) {
      const writer = rowWriter(db, { ...p.table, name: liveName(p.table) }, sessionId);
      for (const row of rows) writer.add(row);
      writer.flush();
    }

    const lastSeq = total - 1;
    const insertProjection = db.prepare(`INSERT INTO ${liveName(PROJECTIONS_TABLE)} (session_id, name, version, last_seq, digest, rows) VALUES (?, ?, ?, ?, ?, ?)`);
    const projections = PROJECTIONS.map((p) => {
      const { digest, rows } = digestOf(db, p.table, sessionId, liveName(p.table));
      insertProjection.run(sessionId, p.name, p.version, lastSeq, digest, rows);
      return { name: p.name, rows, digest, lastSeq };
    });
    return { sessionId, projections, events: total, seconds: (performance.now() - started) / 1000 };
  })();
}

/**
 * Rebuild every projection of one session from its log and store it in the file (the db must be
 * open for writing). The log is folded into the connection's TEMP tables first, holding no lock;
 * only the copy into the file — the old rows deleted, the new ones and the `projections` rows
 * inserted — is a write transaction, a short one: a reader sees the old projections or the new
 * ones, never a mix, and a recording appending to the same file waits at most that long.
 */
export function replaySession(db: Database.Database, sessionId: number, options: ReplayOptions = {}): ReplayResult {
  checkSession(db, sessionId);
  ensureTables(db);
  installLiveViews(db, [sessionId]);
  try {
    const result = foldSession(db, sessionId, options);
    db.transaction(() => {
      for (const t of ALL_TABLES) {
        db.prepare(`DELETE FROM main.${t.name} WHERE session_id = ?`).run(sessionId);
        const cols = ['session_id', ...t.columns.map((c) => c.name)].join(', ');
        db.prepare(`INSERT INTO main.${t.name} (${cols}) SELECT ${cols} FROM ${liveName(t)} WHERE session_id = ?`).run(sessionId);
      }
    }).immediate();
    return result;
  } finally {
    dropLiveViews(db);
  }
}

/**
 * Fold the given sessions' projections into this connection only (TEMP tables behind TEMP views
 * named like the file's tables, so every query — the user's SQL too — reads them as if stored):
 * for a session still recording (its projections would be behind by the next batch, and writing
 * them would make the recorder wait) or a file this process may not write. The file is unchanged.
 */
export function foldLive(db: Database.Database, sessionIds: readonly number[], options: ReplayOptions = {}): ReplayResult[] {
  if (sessionIds.length === 0) return [];
  for (const id of sessionIds) checkSession(db, id);
  installLiveViews(db, sessionIds);
  return sessionIds.map((id) => foldSession(db, id, options));
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
 * the log grew (a recording still under way when they were built). A session this connection
 * folded itself (foldLive) is not stale: it was folded from the log as committed then, which is
 * what a reader of a session still recording reads.
 */
export function staleSessions(db: Database.Database): number[] {
  const folded = db.prepare("SELECT 1 FROM temp.sqlite_master WHERE name = 'live_projections'").get()
    ? new Set(db.prepare(`SELECT DISTINCT session_id FROM ${liveName(PROJECTIONS_TABLE)}`).pluck().all() as number[])
    : new Set<number>();
  const sessions = (db.prepare('SELECT id, events FROM sessions ORDER BY id').raw().all() as [number, number][]).filter(([id]) => !folded.has(id));
  const hasTable = db.prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'projections'").get();
  if (!hasTable) return sessions.map(([id]) => id);
  const built = db.prepare('SELECT name, version, last_seq FROM main.projections WHERE session_id = ?').raw();
  const lastMark = db.prepare('SELECT max(seq) FROM event_marks WHERE session_id = ?').pluck();
  const lastInstruction = (id: number) => new InstructionRuns(db, id).lastSeq();
  return sessions
    .filter(([id, events]) => {
      const rows = built.all(id) as [string, number, number][];
      const extent = Math.max(events, ((lastMark.get(id) as number | null) ?? -1) + 1, (lastInstruction(id) ?? -1) + 1);
      return PROJECTIONS.some((p) => {
        const row = rows.find(([name]) => name === p.name);
        return !row || row[1] !== p.version || row[2] !== extent - 1;
      });
    })
    .map(([id]) => id);
}

/** Sessions still being recorded (or killed while recording): their log may yet grow. */
function incompleteSessions(db: Database.Database): Set<number> {
  return new Set(db.prepare("SELECT id FROM sessions WHERE status = 'incomplete'").pluck().all() as number[]);
}

/**
 * How long a reader waits for a recorder's batch to commit before it gives up storing projections
 * (they are then folded for this reader only): a batch takes milliseconds, so this is generous.
 */
const READER_BUSY_MS = 5_000;

/**
 * Store up-to-date projections in the file for every finished session ('complete' or 'failed')
 * whose projections are missing or behind; returns the sessions stored. A session still
 * recording ('incomplete') is never stored by a reader: its log grows with every batch, and a
 * reader's long write would make the recorder wait (issue K §5); `ntflow replay` stores it on
 * request, and a killed recording's readers fold it themselves (foldLive). A file this process may
 * not write (read-only mount or folder, locked past READER_BUSY_MS) is left as it is. `only`
 * limits it to one session.
 */
export function ensureProjections(path: string, options: ReplayOptions & { only?: number } = {}): number[] {
  const reader = openTraceForReading(path);
  let stale: number[];
  try {
    const recording = incompleteSessions(reader);
    stale = staleSessions(reader).filter((id) => !recording.has(id) && (options.only === undefined || id === options.only));
  } finally {
    reader.close();
  }
  if (stale.length === 0) return [];
  const cannotWrite = (e: unknown) =>
    e instanceof TraceFileError || /^SQLITE_(READONLY|BUSY|LOCKED|CANTOPEN|PERM|IOERR)/.test(String((e as { code?: unknown }).code ?? ''));
  const rebuilt: number[] = [];
  let db: Database.Database | null = null;
  try {
    db = openTraceForWriting(path, { mustExist: true, busyTimeoutMs: READER_BUSY_MS });
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

/**
 * Open a trace read-only with every session's projections up to date: stored in the file when
 * they can be (ensureProjections), else — a session still recording, a file this process may not
 * write — folded into this connection only (foldLive), so reading never stops a recording and
 * works on a read-only mount. `only` limits the folding to one session (the one a command draws).
 */
export function openWithProjections(path: string, options: ReplayOptions & { only?: number } = {}): Database.Database {
  ensureProjections(path, options);
  const db = openTraceForReading(path);
  try {
    const stale = staleSessions(db).filter((id) => options.only === undefined || id === options.only);
    foldLive(db, stale, options);
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}
