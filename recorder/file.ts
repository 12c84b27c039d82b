// Opening trace files: create or upgrade for writing, open read-only for readers, and refuse what
// is not an ntflow trace with a one-line message that says what the file is and what to do.
import Database from 'better-sqlite3';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { TraceFileError } from './errors.js';
import { encodeEffectsList, MAX_RUN } from './runs.js';
import { BlockEncoder, type NewBlock } from './blocks.js';
import { EVENT_TABLES, SCHEMA_VERSION, schemaSql } from './schema.js';
import { NTFLOW_VERSION } from './version.js';

/** A trace file that cannot be used: the message is one line naming the file and the fix. */
export { TraceFileError };

/** A trace that cannot be opened for writing where it is; `reason` says why in a few words. */
class NotWritableError extends TraceFileError {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

const SQLITE_MAGIC = 'SQLite format 3\u0000';

// A trace on a read-only mount is opened with SQLite's `immutable=1` URI parameter (below), and
// better-sqlite3 reads URIs only when SQLITE_USE_URI is set before its addon loads (on the first
// `new Database`, after this module is evaluated). A user's path is then never taken for a URI:
// sqlitePath gives one that starts with 'file:' a './'.
process.env.SQLITE_USE_URI ??= '1';
const sqlitePath = (path: string) => (path.startsWith('file:') ? `./${path}` : path);

/**
 * Why `path` cannot be written, in words (null when nothing says so): a read-only file system, a
 * folder or file this user may not write. Asked of the file system because SQLite only says
 * 'unable to open database file' or 'attempt to write a readonly database'.
 */
function whyNotWritable(path: string): string | null {
  const dir = dirname(resolve(path));
  for (const [target, what] of [[dir, `the folder ${dir}`], [path, 'the file']] as const) {
    if (target === path && !existsSync(path)) continue;
    try {
      accessSync(target, constants.W_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EROFS') return `${what} is on a read-only file system`;
      if (code === 'EACCES' || code === 'EPERM') return `${what} is not writable by this user`;
    }
  }
  return null;
}

function isSqliteFile(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(16);
    const n = readSync(fd, buf, 0, 16, 0);
    return n === 16 && buf.toString('latin1') === SQLITE_MAGIC;
  } finally {
    closeSync(fd);
  }
}

/**
 * A file cut short (a copy interrupted, a full disk) is refused before SQLite reads it: the
 * header's page count times the page size is the size SQLite last wrote (the header is only
 * trusted when its change counter matches the version-valid-for field, as SQLite does). In WAL
 * mode the header is rewritten only at checkpoints and the main file never shrinks below it, so a
 * shorter file has lost bytes.
 */
function checkNotTruncated(path: string): void {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  const header = Buffer.alloc(100);
  let n: number;
  try {
    n = readSync(fd, header, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  const fix = 'restore it from a copy or record a new trace';
  if (n < 100) throw new TraceFileError(`${path} is truncated (${size} bytes, shorter than an SQLite header); ${fix}`);
  const rawPageSize = header.readUInt16BE(16);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  const pages = header.readUInt32BE(28);
  const headerValid = header.readUInt32BE(24) === header.readUInt32BE(92);
  // While a recording runs, a checkpoint copies the WAL's pages into the file page 1 (the header)
  // first, so for a moment the header names pages not yet written: a non-empty -wal beside the
  // file means SQLite still has them there, and the file is not judged by its header then.
  const wal = `${path}-wal`;
  const walInUse = existsSync(wal) && statSync(wal).size > 0;
  if (headerValid && pages > 0 && size < pages * pageSize && !walInUse) {
    throw new TraceFileError(`${path} is truncated: ${size} bytes where its header says ${pages * pageSize}; ${fix}`);
  }
}

/** SQLite's word for a damaged file, as one line naming it (null for other errors). */
function damaged(e: unknown, path: string): TraceFileError | null {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^SQLITE_(CORRUPT|NOTADB)/.test(code)) return null;
  return new TraceFileError(`${path} is damaged (${(e as Error).message.split('\n')[0]}); restore it from a copy or record a new trace`);
}

/** Check a path before anything is written: a directory, a non-SQLite file, a foreign database. */
function checkExisting(path: string): 'new' | 'trace' {
  if (!existsSync(path)) return 'new';
  const st = statSync(path);
  if (st.isDirectory()) throw new TraceFileError(`${path} is a directory; give a file name, e.g. ${path.replace(/\/?$/, '/trace.db')}`);
  // SQLite needs a seekable file and writes -wal and -shm files beside it: a device or pipe
  // (/dev/full, /dev/stdout) can never hold a trace.
  if (!st.isFile()) throw new TraceFileError(`${path} is not a regular file (a device or pipe cannot hold a trace); give a file name such as trace.db`);
  if (st.size === 0) return 'new';
  if (!isSqliteFile(path)) throw new TraceFileError(`${path} is not an SQLite file (so not an ntflow trace); choose another output file`);
  return 'trace';
}

function readSchemaVersion(db: Database.Database, path: string): number {
  try {
    return readSchemaVersionUnchecked(db, path);
  } catch (e) {
    throw damaged(e, path) ?? e;
  }
}

function readSchemaVersionUnchecked(db: Database.Database, path: string): number {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  if (!hasMeta) throw new TraceFileError(`${path} is an SQLite database but not an ntflow trace (it has no meta table); choose another file`);
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
  const format = db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as { value: string } | undefined;
  if (!row || format?.value !== 'ntflow-trace') throw new TraceFileError(`${path} is an SQLite database but not an ntflow trace; choose another file`);
  // Only whole numbers from 1 up were ever written: '0', 'x' or '' is a damaged or hand-made meta
  // row, and upgrading (or appending to) it would write into a file whose layout is unknown.
  const version = /^[1-9][0-9]{0,8}$/.test(row.value) ? Number(row.value) : NaN;
  if (Number.isNaN(version)) {
    throw new TraceFileError(
      `${path} has trace schema '${row.value.slice(0, 40)}', which no ntflow writes (schemas are 1 to ${SCHEMA_VERSION}); the file is damaged or was edited — restore it from a copy or record a new trace`,
    );
  }
  if (version > SCHEMA_VERSION) {
    const by = db.prepare("SELECT value FROM meta WHERE key = 'created_by'").get() as { value: string } | undefined;
    throw new TraceFileError(
      `${path} was written by ntflow ${by?.value ?? '(newer)'} with trace schema ${version}; this ntflow (${NTFLOW_VERSION}) reads schema ${SCHEMA_VERSION} or older — upgrade ntflow`,
    );
  }
  return version;
}

/**
 * Upgrades from older schema versions, applied in order when a file is opened for writing.
 * 1 → 2: the event tables schema 1 did not have — exception_dispatches (issue L's
 * exception-dispatch events), console_outputs and debug_prints (the console and debug output of
 * issue F) — the events view recreated to include them, and sessions.program_image (PE programs,
 * issue F).
 */
const UPGRADES: Record<number, (db: Database.Database) => void> = {
  1: (db) => {
    const statements = schemaSql();
    // SQLite appends an added column's text, comment included, right before the table's closing
    // parenthesis: a block comment keeps it there.
    db.exec("ALTER TABLE sessions ADD COLUMN program_image BLOB /* the program's PE32 image when it is a .exe (NULL for assembly) */");
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    for (const t of EVENT_TABLES) {
      if (!has.get(t.name)) db.exec(statements.find((s) => s.startsWith(`CREATE TABLE ${t.name} (`))!);
    }
    db.exec('DROP VIEW events');
    db.exec(statements.find((s) => s.startsWith('CREATE VIEW events'))!);
  },
  2: (db) => {
    // Schema 3: probes say where and why touching a buffer faulted; handle lookups carry the type
    // and access asked for and the entry's; handle_entries records every handle made and destroyed.
    const has = (table: string, column: string) => (db.prepare(`SELECT 1 FROM pragma_table_info('${table}') WHERE name = ?`).get(column) !== undefined);
    const add = (table: string, column: string, type: string, comment: string) => {
      if (!has(table, column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type} /* ${comment} */`);
    };
    add('probes', 'fault_address', 'INTEGER', 'where touching the buffer faulted when the range and alignment checks passed but a page did not (NULL otherwise)');
    add('probes', 'fault', 'TEXT', "why that page faulted: 'not-present' or 'read-only' (NULL when it did not)");
    add('handle_lookups', 'wanted_type', 'TEXT', 'the object type the caller asked for (NULL: any)');
    add('handle_lookups', 'desired_access', 'INTEGER', 'the access mask the caller asked for (generic rights as given)');
    add('handle_lookups', 'granted_access', 'INTEGER', "the handle entry's GrantedAccess (NULL when no entry was found)");
    add('handle_lookups', 'found_type', 'TEXT', 'the type of the object the entry names, also when the lookup failed on it (NULL: no entry)');
    const statements = schemaSql();
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'handle_entries'").get()) {
      db.exec(statements.find((s) => s.startsWith('CREATE TABLE handle_entries ('))!);
    }
    db.exec('DROP VIEW IF EXISTS events');
    db.exec(statements.find((s) => s.startsWith('CREATE VIEW events'))!);
  },
  3: (db) => {
    // Schema 4: the events view comes in (session_id, seq) order (a merge, no sort).
    db.exec('DROP VIEW IF EXISTS events');
    db.exec(schemaSql().find((s) => s.startsWith('CREATE VIEW events'))!);
  },
  // Schema 5: instructions in runs (recorder/runs.ts) instead of one instruction_log row each.
  4: upgradeToRuns,
  // Schema 6: a run lists its instructions as straight-line blocks with repeat counts (recorder/blocks.ts).
  5: upgradeToBlocks,
};

/** The oldest schema readers open as it is; older files are upgraded when first opened. */
const READABLE_SINCE = 6;

/** instruction_runs as schema 5 made it: a JSON array of code ids per run (upgradeToBlocks rewrites it). */
const SCHEMA_5_RUNS = `CREATE TABLE instruction_runs (
  session_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  count INTEGER NOT NULL,
  icount INTEGER NOT NULL,
  thread_id INTEGER NOT NULL,
  codes TEXT NOT NULL,
  effects BLOB,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID`;

/**
 * Schema 5 → 6: each run's JSON array of code ids becomes its block items, the blocks stored once
 * per session in code_blocks (numbered in the order they first run, as the recorder numbers them);
 * the effects are kept as they are. Then the views are made anew.
 */
function upgradeToBlocks(db: Database.Database): void {
  const statements = schemaSql();
  const make = (prefix: string) => db.exec(statements.find((s) => s.startsWith(prefix))!);
  db.exec('DROP VIEW IF EXISTS events');
  db.exec('DROP VIEW IF EXISTS instructions');
  const hasCodes = db.prepare("SELECT 1 FROM pragma_table_info('instruction_runs') WHERE name = 'codes'").get() !== undefined;
  if (hasCodes) {
    db.exec('ALTER TABLE instruction_runs RENAME TO instruction_runs_v5');
    make('CREATE TABLE code_blocks (');
    make('CREATE TABLE counting (');
    make('WITH RECURSIVE numbers');
    make('CREATE TABLE instruction_runs (');
    const insertRun = db.prepare('INSERT INTO instruction_runs (session_id, seq, count, icount, thread_id, blocks, effects) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const insertBlock = db.prepare('INSERT INTO code_blocks (session_id, id, codes, length) VALUES (?, ?, ?, ?)');
    const page = db.prepare('SELECT seq, count, icount, thread_id, codes, effects FROM instruction_runs_v5 WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT 1024').raw();
    const codeRows = db.prepare('SELECT id, eip, length(bytes) FROM code WHERE session_id = ?').raw();
    for (const id of db.prepare('SELECT id FROM sessions ORDER BY id').pluck().all() as number[]) {
      const blocks = new BlockEncoder();
      for (const [code, eip, length] of codeRows.all(id) as [number, number, number][]) blocks.addCode(code, eip, length);
      for (let after = -1; ; ) {
        const rows = page.all(id, after) as [number, number, number, number, string, Uint8Array | null][];
        if (rows.length === 0) break;
        for (const [seq, count, icount, thread, codes, effects] of rows) {
          const ids = JSON.parse(codes) as number[];
          if (ids.length !== count) throw new TraceFileError(`the instruction run at seq ${seq} of session ${id} lists ${ids.length} instructions, not ${count}; the trace file is damaged: restore it from a copy or record it again`);
          const fresh: NewBlock[] = [];
          const items = blocks.encode(ids, 0, count, fresh);
          for (const b of fresh) insertBlock.run(id, b.id, b.codes, b.length);
          insertRun.run(id, seq, count, icount, thread, items, effects);
        }
        after = rows[rows.length - 1][0];
      }
    }
    db.exec('DROP TABLE instruction_runs_v5');
  }
  make('CREATE VIEW instructions');
  make('CREATE VIEW events');
}

/**
 * Schema 4 → 5: every session's instruction_log rows regrouped into instruction_runs — each row's
 * icount and thread taken from the last other event before it (event_marks), as the old
 * instructions view did — then instruction_log dropped (upgradeToBlocks, next, makes the views).
 */
function upgradeToRuns(db: Database.Database): void {
  db.exec('DROP VIEW IF EXISTS events');
  db.exec('DROP VIEW IF EXISTS instructions');
  const hasLog = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'instruction_log'").get() !== undefined;
  // Runs already (a file whose version row was set back by hand): the next step makes the views.
  if (!hasLog) return;
  db.exec(SCHEMA_5_RUNS);
  const insert = db.prepare('INSERT INTO instruction_runs (session_id, seq, count, icount, thread_id, codes, effects) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const sessions = db.prepare('SELECT id, first_thread FROM sessions ORDER BY id').all() as { id: number; first_thread: number }[];
  const page = db.prepare('SELECT seq, code_id, effects FROM instruction_log WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT 65536').raw();
  for (const s of sessions) {
    const marks = db.prepare('SELECT seq, icount, thread_id FROM event_marks WHERE session_id = ? ORDER BY seq').raw().all(s.id) as [number, number, number][];
    let m = -1; // the last mark before the current row
    let run: { seq: number; icount: number; thread: number; codes: number[]; effects: Uint8Array[] } | null = null;
    const flush = () => {
      if (!run) return;
      insert.run(s.id, run.seq, run.codes.length, run.icount, run.thread, `[${run.codes.join(',')}]`, encodeEffectsList(run.effects));
      run = null;
    };
    for (let after = -1; ; ) {
      const rows = page.all(s.id, after) as [number, number, Uint8Array | null][];
      if (rows.length === 0) break;
      for (const [seq, code, effects] of rows) {
        while (m + 1 < marks.length && marks[m + 1][0] < seq) m++;
        const icount = m >= 0 ? marks[m][1] + (seq - marks[m][0] - 1) : seq;
        const thread = m >= 0 ? marks[m][2] : s.first_thread;
        const r = run as { seq: number; icount: number; thread: number; codes: number[]; effects: Uint8Array[] } | null;
        if (!r || seq !== r.seq + r.codes.length || icount !== r.icount + r.codes.length || thread !== r.thread || r.codes.length === MAX_RUN) {
          flush();
          run = { seq, icount, thread, codes: [], effects: [] };
        }
        run!.codes.push(code);
        run!.effects.push(effects ?? new Uint8Array(0));
      }
      after = rows[rows.length - 1][0];
    }
    flush();
  }
  db.exec('DROP TABLE instruction_log');
  // The views come with schema 6 (upgradeToBlocks), the step that always follows.
}

function pragmasForWriting(db: Database.Database): void {
  db.pragma('journal_mode = WAL'); // readers work while a recording runs; a kill keeps committed batches
  db.pragma('synchronous = NORMAL'); // a committed transaction survives the process being killed
  db.pragma('foreign_keys = OFF');
}

/**
 * Open (creating or upgrading) a trace file for recording. With mustExist (replay, an upgrade
 * before reading), a missing or empty file is refused rather than given a schema: nothing is written
 * into a file that was not a trace.
 */
export function openTraceForWriting(path: string, options: { mustExist?: boolean; busyTimeoutMs?: number } = {}): Database.Database {
  const state = checkExisting(path);
  if (state === 'new' && options.mustExist) {
    throw new TraceFileError(
      existsSync(path)
        ? `${path} is empty (0 bytes), not a trace; record one with 'ntflow record <scenario> -o ${path}'`
        : `${path} does not exist; record one with 'ntflow record <scenario> -o ${path}'`,
    );
  }
  if (state === 'trace') checkNotTruncated(path);
  if (state === 'new') {
    const dir = dirname(path);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new TraceFileError(`cannot create the folder ${dir} for ${path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const cannotWrite = (e: unknown) => {
    const why = whyNotWritable(path);
    const sqlite = (e as Error).message.split('\n')[0];
    return why
      ? new NotWritableError(`cannot write ${path}: ${why} (reading commands work on it where it is; to record or replay, copy it to a writable folder)`, why)
      : new NotWritableError(`cannot open ${path} for writing: ${sqlite}; choose a file in a folder you can write`, sqlite);
  };
  let db: Database.Database;
  try {
    // busyTimeoutMs: how long a statement waits for another connection's write to end (SQLite's
    // busy timeout; better-sqlite3's default is 5 s).
    db = new Database(sqlitePath(path), options.busyTimeoutMs === undefined ? {} : { timeout: options.busyTimeoutMs });
  } catch (e) {
    throw cannotWrite(e);
  }
  try {
    if (state === 'new' || !db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'meta'").get()) {
      if (state === 'trace' && db.prepare('SELECT count(*) AS n FROM sqlite_master').get() !== undefined) {
        const n = (db.prepare('SELECT count(*) AS n FROM sqlite_master').get() as { n: number }).n;
        if (n > 0) throw new TraceFileError(`${path} is an SQLite database but not an ntflow trace; choose another file`);
      }
      pragmasForWriting(db);
      db.transaction(() => {
        for (const stmt of schemaSql()) db.exec(stmt);
        const meta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
        meta.run('format', 'ntflow-trace');
        meta.run('schema_version', String(SCHEMA_VERSION));
        meta.run('created_by', NTFLOW_VERSION);
      })();
      return db;
    }
    const version = readSchemaVersion(db, path);
    for (let v = version; v < SCHEMA_VERSION; v++) {
      if (typeof UPGRADES[v] !== 'function') throw new TraceFileError(`${path} has trace schema ${version}, which this ntflow cannot upgrade; record a new trace`);
    }
    pragmasForWriting(db);
    for (let v = version; v < SCHEMA_VERSION; v++) {
      db.transaction(() => {
        UPGRADES[v](db);
        db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(v + 1));
      })();
    }
    return db;
  } catch (e) {
    db.close();
    if (e instanceof TraceFileError) throw e;
    const msg = (e as Error).message.split('\n')[0];
    const bad = damaged(e, path);
    if (bad) throw bad;
    if ((e as { code?: unknown }).code === 'SQLITE_FULL') throw new TraceFileError(`cannot write ${path}: ${msg} (ENOSPC); free some space or choose another file`);
    if (/readonly|read-only|permission/i.test(msg) || /^SQLITE_(READONLY|CANTOPEN|PERM)/.test(String((e as { code?: unknown }).code))) throw cannotWrite(e);
    if (/not a database|file is encrypted/i.test(msg)) throw new TraceFileError(`${path} is not an ntflow trace (${msg}); choose another file`);
    throw e;
  }
}

/** Open a trace read-only (query, replay, flow): refuses what is not a trace of a known schema. */
export function openTraceForReading(path: string): Database.Database {
  if (!existsSync(path)) throw new TraceFileError(`${path} does not exist; record one with 'ntflow record <scenario> -o ${path}'`);
  if (statSync(path).isDirectory()) throw new TraceFileError(`${path} is a directory, not a trace file`);
  // Opening a FIFO to read its header would wait for a writer forever.
  if (!statSync(path).isFile()) throw new TraceFileError(`${path} is not a regular file (a device or pipe), so not an ntflow trace; give a trace file written by 'ntflow record'`);
  if (!isSqliteFile(path)) throw new TraceFileError(`${path} is not an SQLite file, so not an ntflow trace; give a trace file written by 'ntflow record'`);
  checkNotTruncated(path);
  let db: Database.Database;
  try {
    db = new Database(sqlitePath(path), { readonly: true, fileMustExist: true });
  } catch (e) {
    throw new TraceFileError(`cannot open ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    readSchemaVersion(db, path);
  } catch (e) {
    // A WAL-mode file needs its -shm file, which SQLite creates beside it: on a read-only mount or
    // in a folder this user may not write the first read fails. Nothing can be writing there, so
    // the file is read as immutable (no locks, no -shm).
    if (!/^SQLITE_(CANTOPEN|READONLY)/.test(String((e as { code?: unknown }).code))) {
      db.close();
      throw e;
    }
    db.close();
    db = openImmutable(path, e);
  }
  let version: number;
  try {
    version = readSchemaVersion(db, path);
  } catch (e) {
    db.close();
    throw e;
  }
  if (version >= READABLE_SINCE) return db;
  // An older schema lacks tables the readers use: it is upgraded in place once (as recording into
  // it would: the upgrades only add), then read. Its sessions' rows are not touched.
  db.close();
  let writer: Database.Database;
  try {
    writer = openTraceForWriting(path, { mustExist: true });
  } catch (e) {
    // Not writable here (a read-only mount, another user's folder): say so, and what to do.
    if (!(e instanceof NotWritableError)) throw e;
    throw new TraceFileError(`${path} has trace schema ${version}, which is upgraded in place the first time it is read, but it cannot be written here (${e.reason}); copy it to a writable folder and read the copy`);
  }
  writer.close();
  return openTraceForReading(path);
}

/** The trace's path as the user gave it, also for a connection openImmutable made (a URI). */
export function traceName(db: Database.Database): string {
  const m = /^file:(.*)\?immutable=1$/.exec(db.name);
  return m ? decodeURI(m[1]).replace(/%3F/g, '?').replace(/%23/g, '#') : db.name;
}

/** Open a trace on a read-only location as immutable; `cause` is why the ordinary open failed. */
function openImmutable(path: string, cause: unknown): Database.Database {
  const wal = `${path}-wal`;
  // Immutable reads ignore the write-ahead log: a non-empty one holds committed batches that are
  // not in the file yet (a recording killed there), which only a writable copy can fold in.
  if (existsSync(wal) && statSync(wal).size > 0) {
    throw new TraceFileError(
      `cannot read ${path}: ${whyNotWritable(path) ?? 'its folder cannot be written'}, and its write-ahead log ${wal} holds data not yet in the file; copy both files to a writable folder and read the copy`,
    );
  }
  const uri = `file:${encodeURI(resolve(path)).replace(/\?/g, '%3F').replace(/#/g, '%23')}?immutable=1`;
  try {
    return new Database(uri, { readonly: true, fileMustExist: true });
  } catch {
    throw new TraceFileError(`cannot open ${path}: ${(cause as Error).message.split('\n')[0]}`);
  }
}
