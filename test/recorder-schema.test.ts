// The trace file's schema contract (DESIGN.md, "The trace file"): the tables and views other tools
// rely on exist with their named columns, and every table, view and column in the file carries a
// `--` comment in its stored CREATE statement — parsed from sqlite_master of a real recording, so
// what users see with `.schema` is what is checked.
//   npx tsc -p tsconfig.json && npx tap dist/test/recorder-schema.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVENT_TABLES, SCHEMA_VERSION, openTraceForReading, record, schemaSql } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-schema-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'schema.db');
await record({ scenario: 'user-nt-readfile' }, { output: file });
const db = new Database(file, { readonly: true });
t.teardown(() => db.close());

interface MasterRow {
  type: 'table' | 'view' | 'index' | 'trigger';
  name: string;
  sql: string | null;
}
const master = (db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").all() as MasterRow[]).filter(
  (r) => r.type === 'table' || r.type === 'view',
);
const columnsOf = (name: string, from: Database.Database = db): string[] => (from.prepare(`SELECT name FROM pragma_table_info(?)`).all(name) as { name: string }[]).map((r) => r.name);

// ---- the contract ---------------------------------------------------------------------------------

const CONTRACT: Record<string, { type: 'table' | 'view' | 'either'; columns: string[] }> = {
  sessions: { type: 'table', columns: ['id', 'name', 'program', 'status', 'outcome', 'instructions', 'events', 'started_at', 'finished_at', 'options'] },
  events: { type: 'either', columns: ['session_id', 'seq', 'type', 'icount', 'cpl', 'eip', 'thread_id'] },
  instructions: { type: 'either', columns: ['session_id', 'seq', 'eip', 'cpl', 'bytes', 'asm'] },
  ring_transitions: { type: 'either', columns: ['session_id', 'seq', 'from_cpl', 'to_cpl', 'mechanism', 'from_eip', 'to_eip'] },
  msr_reads: { type: 'either', columns: ['session_id', 'seq', 'msr', 'value', 'source'] },
  ssdt_lookups: {
    type: 'either',
    columns: ['session_id', 'seq', 'service_number', 'table_index', 'service_index', 'table_base', 'target', 'target_symbol', 'arg_bytes', 'in_range'],
  },
  apc_checks: { type: 'either', columns: ['session_id', 'seq', 'thread_id', 'returning_to_cpl', 'user_apc_pending', 'kernel_apc_pending', 'delivered'] },
  // Typed tables the round trip and `ntflow sessions` rely on.
  service_enters: { type: 'either', columns: ['session_id', 'seq', 'service', 'service_number', 'previous_mode'] },
  service_exits: { type: 'either', columns: ['session_id', 'seq', 'service', 'service_number', 'status', 'status_name'] },
};

for (const [name, want] of Object.entries(CONTRACT)) {
  t.test(`contract: ${name}`, async (t) => {
    const row = master.find((r) => r.name === name);
    t.ok(row, `${name} exists`);
    if (!row) return;
    if (want.type !== 'either') t.equal(row.type, want.type, `${name} is a ${want.type}`);
    const cols = columnsOf(name);
    for (const c of want.columns) t.ok(cols.includes(c), `${name}.${c} exists`);
  });
}

t.test('contract: every event type has a table, and the events view covers them all', async (t) => {
  const types = new Set(EVENT_TABLES.map((x) => x.event));
  for (const e of ['ring-transition', 'msr-read', 'msr-write', 'exception', 'ssdt-lookup', 'apc-check', 'service-enter', 'service-exit', 'probe', 'handle-lookup', 'irp', 'thread-switch', 'console-output', 'debug-print']) {
    t.ok(types.has(e as never), `a table holds '${e}' events`);
  }
  for (const x of EVENT_TABLES) t.ok(master.some((r) => r.name === x.name && r.type === 'table'), `${x.name} is in the file`);
  const eventsSql = master.find((r) => r.name === 'events')!.sql!;
  for (const x of EVENT_TABLES) t.match(eventsSql, new RegExp(`\\bFROM ${x.name}\\b`), `events includes ${x.name}`);
});

t.test('contract: the file says it is an ntflow trace and which schema version', async (t) => {
  const meta = Object.fromEntries((db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
  t.equal(meta.format, 'ntflow-trace');
  t.equal(Number(meta.schema_version), SCHEMA_VERSION);
  t.match(meta.created_by, /^\d+\.\d+\.\d+/);
});

t.test('a schema 1 file is upgraded when recorded into: exception_dispatches, console_outputs and debug_prints appear, the events view covers them, its sessions stay', async (t) => {
  const old = join(dir, 'v1.db');
  await record({ scenario: 'user-nt-readfile' }, { output: old });
  // Turn the file into what ntflow 0.1.0 wrote: none of schema 2's new event tables, an events view without them.
  const added = ['exception_dispatches', 'console_outputs', 'debug_prints'];
  const w = new Database(old);
  w.exec('DROP VIEW events');
  w.exec('DROP VIEW instructions');
  for (const name of added) w.exec(`DROP TABLE ${name}`);
  // sessions as schema 1 had it: no program_image column.
  const v2Sessions = schemaSql().find((x) => x.startsWith('CREATE TABLE sessions'))!;
  const v1Sessions = v2Sessions.replace(/,( -- the drivers[^\n]*)\n  program_image BLOB[^\n]*\n\)/, '$1\n)').replace('CREATE TABLE sessions', 'CREATE TABLE sessions_v1');
  t.notMatch(v1Sessions, /program_image/);
  w.exec(v1Sessions);
  const v1Columns = columnsOf('sessions_v1', w).join(', ');
  w.exec(`INSERT INTO sessions_v1 (${v1Columns}) SELECT ${v1Columns} FROM sessions`);
  w.exec('DROP TABLE sessions');
  w.exec('ALTER TABLE sessions_v1 RENAME TO sessions');
  w.exec(schemaSql().find((x) => x.startsWith('CREATE VIEW instructions'))!);
  w.exec(schemaSql().find((x) => x.startsWith('CREATE VIEW events'))!.replace(new RegExp(`\\n\\s*UNION ALL SELECT [^\\n]*FROM (${added.join('|')})\\b`, 'g'), ''));
  w.prepare("UPDATE meta SET value = '1' WHERE key = 'schema_version'").run();
  const before = w.prepare('SELECT count(*) AS n FROM events WHERE session_id = 1').get() as { n: number };
  w.close();
  await record({ scenario: 'zw-protect-virtual-memory' }, { output: old });
  const r = new Database(old, { readonly: true });
  t.teardown(() => r.close());
  t.equal((r.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value, String(SCHEMA_VERSION), 'upgraded to the current schema');
  t.same(columnsOf('exception_dispatches', r).slice(0, 8), ['session_id', 'seq', 'icount', 'cpl', 'eip', 'thread_id', 'code', 'code_name']);
  t.ok(columnsOf('sessions', r).includes('program_image'), 'sessions.program_image added');
  t.same(columnsOf('console_outputs', r).slice(6), ['text', 'bytes', 'handle', 'stream', 'process']);
  t.same(columnsOf('debug_prints', r).slice(6), ['text', 'mode', 'source', 'caller', 'caller_symbol', 'module']);
  t.equal((r.prepare('SELECT count(*) AS n FROM events WHERE session_id = 1').get() as { n: number }).n, before.n, 'session 1 untouched');
  t.equal((r.prepare("SELECT count(*) AS n FROM events WHERE session_id = 2 AND type = 'exception-dispatch'").get() as { n: number }).n, 2, "session 2's exception dispatches are in the events view");
});

t.test('a schema 2 file is upgraded when recorded into: probes and handle lookups gain their columns, handle_entries appears, its sessions stay and replay', async (t) => {
  const old = join(dir, 'v2.db');
  await record({ scenario: 'osr-log-user-handle' }, { output: old });
  // Turn the file into what schema 2 was: no handle_entries, probes and handle_lookups without the new columns.
  const w = new Database(old);
  w.exec('DROP VIEW events');
  w.exec('DROP TABLE handle_entries');
  for (const c of ['fault_address', 'fault']) w.exec(`ALTER TABLE probes DROP COLUMN ${c}`);
  for (const c of ['wanted_type', 'desired_access', 'granted_access', 'found_type']) w.exec(`ALTER TABLE handle_lookups DROP COLUMN ${c}`);
  w.exec(schemaSql().find((x) => x.startsWith('CREATE VIEW events'))!.replace(/\n\s*UNION ALL SELECT [^\n]*FROM handle_entries\b/, ''));
  w.prepare("UPDATE meta SET value = '2' WHERE key = 'schema_version'").run();
  const before = w.prepare('SELECT count(*) AS n FROM events WHERE session_id = 1').get() as { n: number };
  w.close();
  // The first read upgrades it in place (test/schema-v1.test.ts does the same on a real schema 1 file).
  const reader = openTraceForReading(old);
  t.equal(reader.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), String(SCHEMA_VERSION), 'reading upgraded it');
  reader.close();
  await record({ scenario: 'kernel-nt-close' }, { output: old });
  replayFile(old);
  const r = new Database(old, { readonly: true });
  t.teardown(() => r.close());
  t.equal((r.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value, String(SCHEMA_VERSION), 'upgraded to the current schema');
  t.same(columnsOf('probes', r).slice(-2), ['fault_address', 'fault']);
  t.same(columnsOf('handle_lookups', r).slice(-4), ['wanted_type', 'desired_access', 'granted_access', 'found_type']);
  t.same(columnsOf('handle_entries', r).slice(6), ['op', 'handle', 'handle_table', 'process', 'object', 'object_type', 'object_name', 'granted_access']);
  t.equal((r.prepare('SELECT count(*) AS n FROM events WHERE session_id = 1').get() as { n: number }).n, before.n, 'session 1 untouched');
  t.ok((r.prepare("SELECT count(*) AS n FROM events WHERE session_id = 2 AND type = 'handle-entry'").get() as { n: number }).n > 0, "session 2's handle entries are in the events view");
  // The old session still explains its failures from what schema 2 recorded.
  const f = r.prepare("SELECT cause FROM findings WHERE session_id = 1 AND kind = 'failure-cause' ORDER BY id").pluck().all();
  t.same(f, ['probe-kernel-address', 'handle-never-opened', 'handle-never-opened'], 'schema 2 has no handle entries: the System-thread reason needs them, the rest stands');
});

t.test('a schema 3 file is upgraded when first read: the events view comes in seq order', async (t) => {
  const old = join(dir, 'v3.db');
  await record({ scenario: 'osr-log-user-handle' }, { output: old });
  // Schema 3's events view: the same UNION ALL without the ORDER BY.
  const w = new Database(old);
  w.exec('DROP VIEW events');
  w.exec(schemaSql().find((x) => x.startsWith('CREATE VIEW events'))!.replace(/\n\s*ORDER BY session_id, seq$/, ''));
  w.prepare("UPDATE meta SET value = '3' WHERE key = 'schema_version'").run();
  t.notMatch(w.prepare("SELECT sql FROM sqlite_master WHERE name = 'events'").pluck().get() as string, /ORDER BY/, 'the view as schema 3 had it');
  w.close();
  const ro = openTraceForReading(old); // readers upgrade schemas before 5 (instructions in runs) in place
  t.equal((ro.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n > 0, true, 'read');
  ro.close();
  await record({ scenario: 'kernel-nt-close' }, { output: old });
  const r = new Database(old, { readonly: true });
  t.teardown(() => r.close());
  t.equal(r.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), String(SCHEMA_VERSION), 'upgraded to the current schema');
  t.match(r.prepare("SELECT sql FROM sqlite_master WHERE name = 'events'").pluck().get() as string, /ORDER BY session_id, seq$/, 'the view ordered');
  const plan = (r.prepare('EXPLAIN QUERY PLAN SELECT * FROM events WHERE session_id = 1').all() as { detail: string }[]).map((p) => p.detail);
  // The typed tables merge in key order; the instructions' seq is computed from their runs
  // (seq + json_each's key), so SQLite sorts those, within the session, and nothing else.
  const sorts = plan.filter((d) => /TEMP B-TREE/.test(d));
  t.equal(sorts.length, 1, 'one sort: the typed tables merged in key order');
  t.match(sorts[0], /^USE TEMP B-TREE FOR (RIGHT PART|LAST TERM) OF ORDER BY$/, 'of the instructions by seq within the session (already in session order), not a sort of everything');
  const seqs = r.prepare('SELECT session_id, seq FROM events').raw().all() as [number, number][];
  t.ok(seqs.every((v, i) => i === 0 || seqs[i - 1][0] < v[0] || (seqs[i - 1][0] === v[0] && seqs[i - 1][1] + 1 === v[1])), 'both sessions, each gapless and in order');
});

// ---- every table, view and column commented --------------------------------------------------------

interface Part {
  /** The definition's text without comments. */
  text: string;
  /** The line (0-based) the definition ends on. */
  line: number;
}

interface Scanned {
  /** The SQL with every `--` comment blanked out (same length, same lines). */
  code: string;
  /** Comment text by line. */
  comments: Map<number, string>;
  /** The line of each character. */
  lineAt: number[];
  /** Paren depth at each character (a ')' counts at the depth it closes to); -1 inside a string. */
  depth: number[];
}

/** One pass over SQL: where the comments are, and the paren depth of each code character. */
function scan(sql: string): Scanned {
  const comments = new Map<number, string>();
  const lineAt: number[] = [];
  const depth: number[] = [];
  const code = sql.split('');
  let line = 0;
  let d = 0;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i];
    if (ch === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      const end = nl === -1 ? sql.length : nl;
      const text = sql.slice(i + 2, end).trim();
      comments.set(line, comments.has(line) ? `${comments.get(line)} ${text}` : text);
      for (let j = i; j < end; j++) {
        code[j] = ' ';
        lineAt[j] = line;
        depth[j] = d;
      }
      i = end - 1;
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') {
      const end = sql.indexOf(ch, i + 1);
      for (let j = i; j <= end; j++) {
        lineAt[j] = line;
        depth[j] = -1;
      }
      i = end;
      continue;
    }
    lineAt[i] = line;
    if (ch === '(') d++;
    if (ch === ')') d--;
    depth[i] = ch === '(' ? d - 1 : d;
    if (ch === '\n') line++;
  }
  return { code: code.join(''), comments, lineAt, depth };
}

/** Split code[from, to) at commas of paren depth `level` into parts, each with the line it ends on. */
function splitParts(s: Scanned, from: number, to: number, level: number): Part[] {
  const parts: Part[] = [];
  let text = '';
  let lastLine = -1;
  const push = () => {
    if (text.trim()) parts.push({ text: text.trim().replace(/\s+/g, ' '), line: lastLine });
    text = '';
  };
  for (let i = from; i < to; i++) {
    const ch = s.code[i];
    if (ch === ',' && s.depth[i] === level) {
      push();
      continue;
    }
    text += ch;
    if (!/\s/.test(ch)) lastLine = s.lineAt[i];
  }
  push();
  return parts;
}

/** Find a keyword at paren depth `level`, outside comments and strings, from `from`. */
function keyword(s: Scanned, word: string, from: number, level: number): number {
  const re = new RegExp(`\\b${word}\\b`, 'gi');
  re.lastIndex = from;
  for (let m = re.exec(s.code); m; m = re.exec(s.code)) if (s.depth[m.index] === level) return m.index;
  return -1;
}

const comment = (s: Scanned, line: number): string => s.comments.get(line) ?? '';

interface Finding {
  ok: boolean;
  what: string;
}

/** Check one stored CREATE TABLE: a comment for the table, one for each column definition. */
function checkTable(name: string, sql: string, from: Database.Database = db): Finding[] {
  const s = scan(sql);
  const open = s.code.indexOf('(');
  let close = open + 1;
  while (close < s.code.length && !(s.code[close] === ')' && s.depth[close] === 0)) close++;
  const parts = splitParts(s, open + 1, close, 1);
  const defs = parts.filter((p) => !/^(PRIMARY\s+KEY|UNIQUE|CHECK|FOREIGN\s+KEY|CONSTRAINT)\b/i.test(p.text));
  const out: Finding[] = [];
  const firstDefLine = defs.length ? s.lineAt[s.code.indexOf(defs[0].text.split(' ')[0], open)] : 0;
  let tableComment = '';
  for (const [line, text] of s.comments) if (line < firstDefLine) tableComment += text;
  out.push({ ok: tableComment.length >= 3, what: `table ${name} has a comment` });
  const cols = columnsOf(name, from);
  out.push({ ok: defs.length === cols.length, what: `table ${name}: ${defs.length} column definitions parsed, ${cols.length} columns` });
  for (const d of defs) {
    const col = d.text.split(' ')[0].replace(/^["`[]|["`\]]$/g, '');
    const c = comment(s, d.line);
    // The comment must be the column's own (no other definition ends on that line).
    const shared = defs.filter((x) => x.line === d.line).length;
    out.push({ ok: c.length >= 3 && shared === 1, what: `column ${name}.${col} has its own comment` });
  }
  return out;
}

/** Check one stored CREATE VIEW: a comment for the view, one for each column of its first SELECT. */
function checkView(name: string, sql: string, source: Database.Database = db): Finding[] {
  const s = scan(sql);
  const as = keyword(s, 'AS', 0, 0);
  const select = keyword(s, 'SELECT', as, 0);
  const from = keyword(s, 'FROM', select, 0);
  const out: Finding[] = [];
  let viewComment = '';
  for (const [line, text] of s.comments) if (line >= s.lineAt[as] && line < s.lineAt[select]) viewComment += text;
  out.push({ ok: viewComment.length >= 3, what: `view ${name} has a comment` });
  const exprs = splitParts(s, select + 'SELECT'.length, from, 0);
  const cols = columnsOf(name, source);
  out.push({ ok: exprs.length === cols.length, what: `view ${name}: ${exprs.length} select columns parsed, ${cols.length} columns` });
  exprs.forEach((e, i) => {
    const onLine = exprs.filter((x) => x.line === e.line).length;
    const c = comment(s, e.line);
    // Several columns on one line share a comment only when it describes each of them in turn.
    const described = c.length >= 3 && (onLine === 1 || c.split(',').filter((x) => x.trim()).length >= onLine);
    out.push({ ok: described, what: `column ${name}.${cols[i] ?? e.text} has a comment` });
  });
  return out;
}

t.test('every table, view and column in sqlite_master has a -- comment', async (t) => {
  t.ok(master.length >= 15, `${master.length} tables and views`);
  for (const r of master) {
    t.ok(r.sql, `${r.name} has stored SQL`);
    if (!r.sql) continue;
    const findings = r.type === 'table' ? checkTable(r.name, r.sql) : checkView(r.name, r.sql);
    for (const f of findings) t.ok(f.ok, f.what);
  }
});

t.test('the comment checker catches a missing comment', async (t) => {
  // The checker itself: an uncommented column, table or view column fails.
  const probe = new Database(':memory:');
  t.teardown(() => probe.close());
  probe.exec(`CREATE TABLE good (
  -- a table
  a INTEGER, -- first
  b TEXT -- second
)`);
  probe.exec(`CREATE TABLE bad (
  -- a table
  a INTEGER, -- first
  b TEXT
)`);
  probe.exec(`CREATE TABLE bare (a INTEGER -- only a column comment
)`);
  probe.exec(`CREATE VIEW vbad AS
  -- a view
  SELECT a, -- the a
    b
  FROM good`);
  const sqlOf = (n: string) => (probe.prepare('SELECT sql FROM sqlite_master WHERE name = ?').get(n) as { sql: string }).sql;
  t.ok(checkTable('good', sqlOf('good'), probe).every((f) => f.ok), 'a fully commented table passes');
  t.notOk(checkTable('bad', sqlOf('bad'), probe).every((f) => f.ok), 'an uncommented column fails');
  t.notOk(checkTable('bare', sqlOf('bare'), probe).every((f) => f.ok), 'an uncommented table fails');
  t.notOk(checkView('vbad', sqlOf('vbad'), probe).every((f) => f.ok), 'an uncommented view column fails');
});

t.test('schemaSql() is what the file holds', async (t) => {
  const stored = new Set(master.map((r) => r.sql));
  for (const stmt of schemaSql()) {
    const m = /^CREATE (?:TABLE|VIEW) (\w+)/.exec(stmt);
    if (!m) continue;
    t.ok(stored.has(stmt), `${m[1]} is stored as schemaSql() gives it`);
  }
});
