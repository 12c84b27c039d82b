// `ntflow query`: read-only SQL over a trace, its formats, --schema and the named queries, on real
// recordings (osr-log-user-handle, user-nt-readfile, ssdt-hook). The commands' functions are called
// directly with their output collected; the file's bytes are checked unchanged after every refused
// write. The syscalls projection is built here by a small hand-written SQL fold (Perfetto-style: the
// named queries are tested against the documented columns, whoever fills them).
//   npx tsc -p tsconfig.json && npx tap dist/test/analyzer-query.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record, SCHEMA_VERSION } from '../recorder/index.js';
import { namedCommand, queryAction, queryCommand, schemaCommand } from '../bin/query.js';
import { QueryError } from '../analyzer/query.js';
import { NAMED_QUERIES, findNamedQuery, requireProjections } from '../analyzer/named.js';
import { replayFile } from '../analyzer/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-query-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** An output that collects what is written. */
function collect(): { write(s: string): boolean; text: () => string } {
  const chunks: string[] = [];
  return { write: (s: string) => (chunks.push(s), true), text: () => chunks.join('') };
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Run a query; its output, or the one-line error message. */
async function q(file: string, sql: string, opts: { session?: string; format?: 'table' | 'csv' | 'json' | 'jsonl' } = {}): Promise<string> {
  const out = collect();
  await queryCommand(file, sql, { ...opts, out });
  return out.text();
}
async function qError(file: string, sql: string, opts: { session?: string } = {}): Promise<string> {
  try {
    await queryCommand(file, sql, { ...opts, out: collect() });
  } catch (e) {
    if (!(e instanceof QueryError)) throw e;
    return e.message;
  }
  throw new Error(`no error for ${sql}`);
}
async function named(file: string, name: string, opts: { session?: string; syscall?: string; format?: 'table' | 'csv' | 'json' } = {}): Promise<string> {
  const out = collect();
  await namedCommand(file, name, { ...opts, out });
  return out.text();
}
async function namedError(file: string, name: string, opts: { session?: string; syscall?: string } = {}): Promise<string> {
  try {
    await namedCommand(file, name, { ...opts, out: collect() });
  } catch (e) {
    if (!(e instanceof QueryError)) throw e;
    return e.message;
  }
  throw new Error(`no error for --named ${name}`);
}

const osr = join(dir, 'osr.db'); // session 1 osr-log-user-handle, session 2 'nt-read' (user-nt-readfile)
const hook = join(dir, 'hook.db');
const replayed = join(dir, 'replayed.db');
const bare = join(dir, 'bare.db'); // a copy without projections, only ever opened read-only here

t.before(async () => {
  await record({ scenario: 'osr-log-user-handle' }, { output: osr });
  await record({ scenario: 'user-nt-readfile' }, { output: osr, name: 'nt-read' });
  await record({ scenario: 'ssdt-hook' }, { output: hook });
  copyFileSync(osr, replayed);
  copyFileSync(osr, bare);
  replayFile(replayed);
});

t.test('a writing statement is refused in one line and the file is unchanged', async (t) => {
  await q(osr, 'SELECT 1'); // the first query builds the projections; after that the file must not change
  const before = sha(osr);
  const writes = [
    "INSERT INTO meta (key, value) VALUES ('x', 'y')",
    "UPDATE sessions SET name = 'x'",
    'DELETE FROM instruction_runs',
    'DROP TABLE code',
    'DROP VIEW events',
    'CREATE TABLE t (a)',
    'CREATE TEMP TABLE t (a)',
    `ATTACH '${join(dir, 'other.db')}' AS other`,
    'DETACH main',
    'PRAGMA journal_mode = DELETE',
    'PRAGMA user_version = 7',
    'VACUUM',
    `VACUUM INTO '${join(dir, 'copy.db')}'`,
    'REINDEX',
    'BEGIN',
    '  -- a comment first\n  delete from meta',
  ];
  for (const sql of writes) {
    const msg = await qError(osr, sql);
    t.match(msg, /refused/, sql);
    t.notOk(msg.includes('\n'), `one line: ${sql}`);
  }
  t.match(await qError(osr, 'DELETE FROM meta'), /^query only reads: 'DELETE FROM meta' would change the trace, so it was refused/);
  t.match(await qError(osr, 'ATTACH ":memory:" AS m'), /returns none, so it was refused \(ATTACH, DETACH/);
  t.equal(sha(osr), before, 'the trace file is byte for byte the same');
  t.notOk(existsSync(join(dir, 'other.db')), 'ATTACH created no file');
  t.notOk(existsSync(join(dir, 'copy.db')), 'VACUUM INTO wrote no copy');
  // The connection itself is read-only as well.
  t.equal(await q(osr, "SELECT count(*) AS n FROM meta WHERE key = 'x'", { format: 'csv' }), 'n\n0\n');
});

t.test('SQL errors show SQLite\'s message in one line', async (t) => {
  t.equal(await qError(osr, 'SELECT foo FROM sessions'), 'SQL error: no such column: foo');
  t.equal(await qError(osr, 'SELEC 1'), 'SQL error: near "SELEC": syntax error');
  t.equal(await qError(osr, 'SELECT * FROM nosuch'), 'SQL error: no such table: nosuch');
  t.match(await qError(osr, 'SELECT 1; SELECT 2'), /^SQL error: give one statement at a time/);
  t.match(await qError(osr, 'SELECT ?'), /^SQL error: .*parameter.*\(the only parameters are :session; write values into the SQL\)$/);
  t.match(await qError(osr, 'SELECT :other'), /^SQL error: Missing named parameter "other"/);
  t.match(await qError(osr, '   '), /^no SQL given/);
});

t.test('formats: exact CSV, JSON, JSON lines and table', async (t) => {
  const sql = "SELECT 1 AS a, 'x,y \"z\"' AS b, NULL AS c, x'00ff10' AS d, 9223372036854775807 AS e, -1.5 AS f, -9007199254740993 AS g";
  t.equal(await q(osr, sql, { format: 'csv' }), 'a,b,c,d,e,f,g\n1,"x,y ""z""",,00ff10,9223372036854775807,-1.5,-9007199254740993\n');
  t.equal(
    await q(osr, sql, { format: 'json' }),
    '[\n{"a":1,"b":"x,y \\"z\\"","c":null,"d":"00ff10","e":"9223372036854775807","f":-1.5,"g":"-9007199254740993"}\n]\n',
  );
  t.equal(await q(osr, 'SELECT 1 AS a, 2 AS a UNION ALL SELECT 3, 4', { format: 'jsonl' }), '{"a":1,"a:2":2}\n{"a":3,"a:2":4}\n');
  t.equal(await q(osr, 'SELECT 1 AS a WHERE 0', { format: 'json' }), '[]\n');
  t.equal(await q(osr, 'SELECT 1 AS a WHERE 0', { format: 'csv' }), 'a\n');
  t.equal(
    await q(osr, "SELECT 7 AS n, 'ab' AS s, NULL AS z UNION ALL SELECT 12345, 'c', NULL", { format: 'table' }),
    ['    n  s   z', '-----  --  ----', '    7  ab  NULL', '12345  c   NULL', '(2 rows)', ''].join('\n'),
  );
  // Real rows: SYSENTER reads MSR 0x176 = nt!KiFastCallEntry (session 2, user-nt-readfile).
  const msr = "SELECT msr, value, source, hex32(value) AS hex, sym(value) AS symbol FROM msr_reads WHERE session_id = :session AND msr = 374 ORDER BY seq LIMIT 1";
  t.equal(await q(osr, msr, { format: 'csv' }), 'msr,value,source,hex,symbol\n374,2152964720,sysenter,8053a270,nt!KiFastCallEntry\n');
  t.equal(await q(osr, msr, { format: 'json' }), '[\n{"msr":374,"value":2152964720,"source":"sysenter","hex":"8053a270","symbol":"nt!KiFastCallEntry"}\n]\n');
  // 64-bit values come out exactly.
  t.equal(await q(osr, 'SELECT -1 & 0x7FFFFFFFFFFFFFFF AS v', { format: 'csv' }), 'v\n9223372036854775807\n');
  // Long blobs are cut in tables only.
  const table = await q(osr, 'SELECT zeroblob(40) AS b');
  t.match(table, /0{64}… \(40 bytes\)/);
  t.equal(await q(osr, 'SELECT zeroblob(40) AS b', { format: 'csv' }), `b\n${'0'.repeat(80)}\n`);
  t.equal(await q(osr, "SELECT status_name(3221225480) AS s, service_name(183) AS n, service_name(99999) AS none", { format: 'csv' }), 's,n,none\nSTATUS_INVALID_HANDLE,NtReadFile,\n');
});

t.test('large results stream: every row, in order', async (t) => {
  const out = collect();
  const n = await queryCommand(osr, 'SELECT seq FROM instructions WHERE session_id = 1 ORDER BY seq', { format: 'csv', out });
  const lines = out.text().trimEnd().split('\n');
  t.equal(lines.length, n + 1);
  t.same(lines.slice(1, 4), ['0', '1', '2']);
  const expected = new Database(osr, { readonly: true }).prepare('SELECT sum(count) FROM instruction_runs WHERE session_id = 1').pluck().get();
  t.equal(n, expected);
  // A table longer than its look-ahead keeps its column widths.
  const tableOut = collect();
  const rows = await queryCommand(osr, 'SELECT seq, asm FROM instructions WHERE session_id = :session ORDER BY seq', { out: tableOut, session: '2' });
  t.ok(rows > 500);
  t.match(tableOut.text(), new RegExp(`\\(${rows} rows\\)\\n$`));
});

t.test(':session is the --session id (by id or name), the latest by default, and validated', async (t) => {
  t.equal(await q(osr, 'SELECT :session AS s', { format: 'csv' }), 's\n2\n');
  t.equal(await q(osr, 'SELECT :session AS s', { format: 'csv', session: '1' }), 's\n1\n');
  t.equal(await q(osr, 'SELECT name FROM sessions WHERE id = :session', { format: 'csv', session: 'nt-read' }), 'name\nnt-read\n');
  t.equal(await q(osr, 'SELECT count(*) AS n FROM events WHERE session_id = :session', { format: 'csv', session: 'osr-log-user-handle' }), `n\n${new Database(osr, { readonly: true }).prepare('SELECT events FROM sessions WHERE id = 1').pluck().get()}\n`);
  t.equal(await qError(osr, 'SELECT 1', { session: '9' }), "no session '9' in this trace (sessions: 1 osr-log-user-handle, 2 nt-read)");
  t.match(await qError(osr, 'SELECT 1', { session: 'nope' }), /^no session 'nope' in this trace \(sessions: 1 osr-log-user-handle, 2 nt-read\)$/);
});

t.test('files that are not traces', async (t) => {
  const missing = join(dir, 'missing.db');
  t.equal(await qError(missing, 'SELECT 1'), `${missing} does not exist; record one with 'ntflow record <scenario> -o ${missing}'`);
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'hello, not a database\n');
  t.equal(await qError(text, 'SELECT 1'), `${text} is not an SQLite file, so not an ntflow trace; give a trace file written by 'ntflow record'`);
  const other = join(dir, 'other-app.db');
  const db = new Database(other);
  db.exec('CREATE TABLE x (a)');
  db.close();
  t.match(await qError(other, 'SELECT 1'), /is an SQLite database but not an ntflow trace/);
  t.match(await qError(dir, 'SELECT 1'), /is a directory, not a trace file/);
  const out = collect();
  await t.rejects(schemaCommand(missing, { out }), /does not exist/);
  await t.rejects(namedCommand(text, 'rings', { out }), /not an SQLite file/);
});

t.test('--schema prints every table and view with its comments, from the file', async (t) => {
  const out = collect();
  await schemaCommand(osr, { out });
  const text = out.text();
  const db = new Database(osr, { readonly: true });
  const objects = db.prepare("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'").all() as { type: string; name: string }[];
  db.close();
  t.ok(objects.length >= 20);
  for (const o of objects) t.match(text, new RegExp(`CREATE ${o.type.toUpperCase()} ${o.name} `), `${o.type} ${o.name}`);
  t.match(text, new RegExp(`^-- .*: ntflow trace schema ${SCHEMA_VERSION} \\(created by ntflow `));
  t.match(text, /ssdt_lookups[\s\S]*in_range INTEGER, -- 1 when the number passed the limit check/);
  t.match(text, /:session is the --session id/);
  // The same through the command's dispatcher.
  const out2 = collect();
  await queryAction(osr, undefined, { schema: true, out: out2 });
  t.equal(out2.text(), text);
});

t.test('the query action takes exactly one of SQL, --schema and --named', async (t) => {
  const err = (m: string) => new QueryError(m);
  await t.rejects(queryAction(osr, undefined, {}, err), /give SQL .*, --schema or --named NAME/);
  await t.rejects(queryAction(osr, 'SELECT 1', { schema: true }, err), /give one of SQL, --schema and --named, not SQL and --schema/);
  await t.rejects(queryAction(osr, 'SELECT 1', { syscall: '3' }, err), /--syscall goes with --named path/);
  await t.rejects(queryAction(osr, 'SELECT 1', { format: 'xml' as 'csv' }, err), /--format must be one of table, csv, json, jsonl/);
});

t.test('named queries: list, unknown names, and the projections they need', async (t) => {
  const list = await named(osr, 'list');
  for (const nq of NAMED_QUERIES) t.match(list, new RegExp(`^${nq.name}\\b`, 'm'));
  t.match(list, /^path --syscall ID /m);
  t.equal(await namedError(osr, 'nope'), "no named query 'nope'; the named queries are failures, syscalls, path, ssdt, apc, rings, msr (--named list describes them)");
  // A file whose projections could not be built (one this process may not write) says how to build them.
  const db = new Database(bare, { readonly: true });
  t.throws(() => requireProjections(db, bare, findNamedQuery('failures')!, 1), {
    message: `--named failures reads the syscalls, findings tables, which ${bare} does not have yet: run 'ntflow replay ${bare}' first`,
  });
  db.close();
  t.match(await namedError(osr, 'rings', { syscall: '1' }), /--syscall goes with --named path/);
  t.match(await namedError(replayed, 'path'), /--named path needs --syscall ID/);
  t.match(await namedError(replayed, 'path', { syscall: 'x' }), /--syscall: 'x' is not a syscall reference \(ID or SESSION:ID/);
  t.match(await namedError(replayed, 'path', { syscall: '999', session: '1' }), /^no syscall 999 in session 1 \(its ids run 1 … \d+; see --named syscalls\)$/);
  t.match(await namedError(osr, 'rings', { session: '5' }), /^no session '5' in this trace/);
});

t.test('--named failures: the three failing NtWriteFile calls of osr-log-user-handle', async (t) => {
  const rows = JSON.parse(await named(replayed, 'failures', { session: 'osr-log-user-handle', format: 'json' })) as Record<string, unknown>[];
  t.same(
    rows.map((r) => [r.name, r.previous_mode, r.entry, r.status, r.status_name, r.thread, r.caller, r.reason]),
    [
      ['NtWriteFile', 'UserMode', 'nt-direct', '0xC0000005', 'STATUS_ACCESS_VIOLATION', 1996, 'osr-log-user-handle!WriteBoth+0x1d', 'probe-kernel-address: ProbeForWrite(IoStatusBlock F8A0018C): kernel address'],
      ['NtWriteFile', 'KernelMode', 'nt-direct', '0xC0000008', 'STATUS_INVALID_HANDLE', 8, 'osr-log-user-handle!WriteBoth+0x1d', 'handle-system-thread: handle 8 of osr-log-user.exe used from a System thread'],
      ['NtWriteFile', 'KernelMode', 'zw-kernel', '0xC0000008', 'STATUS_INVALID_HANDLE', 8, 'osr-log-user-handle!WriteBoth+0x41', 'handle-system-thread: handle 8 of osr-log-user.exe used from a System thread'],
    ],
  );
  const table = await named(replayed, 'failures', { session: '1' });
  t.match(table, /^session 1 'osr-log-user-handle'\nid\s+enter_seq\s+process\s+thread\s+name\s+entry\s+previous_mode\s+status\s+status_name\s+caller\s+parent\s+reason\n/);
  t.match(table, /\(3 rows\)\n$/);
  // The NtReadFile program session has none.
  t.equal(await named(replayed, 'failures', { session: 'nt-read', format: 'csv' }), 'id,enter_seq,process,thread,name,entry,previous_mode,status,status_name,caller,parent,reason\n');
});

t.test('--named syscalls and --named path: the NtReadFile call from ntdll to SYSEXIT and back', async (t) => {
  const calls = JSON.parse(await named(replayed, 'syscalls', { format: 'json' })) as Record<string, unknown>[];
  const read = calls.find((c) => c.name === 'NtReadFile')!;
  t.ok(read, 'session 2 has an NtReadFile call');
  t.match(read, { number: '0xB7', entry: 'sysenter', previous_mode: 'UserMode', status: '0x00000000', status_name: 'STATUS_SUCCESS' });
  t.match(String(read.caller), /^user-nt-readfile!/);
  const path = JSON.parse(await named(replayed, 'path', { syscall: String(read.id), format: 'json' })) as { seq: number; event: string; cpl: number; eip: string; symbol: string | null; what: string }[];
  t.match(path[0], { event: 'instruction', cpl: 3, what: 'call ntdll!NtReadFile (77f761e8)' }, 'starts at the program\'s call');
  t.match(path[1], { eip: '77f761e8', symbol: 'ntdll!NtReadFile', what: 'mov eax,0B7h' });
  t.match(path.at(-1), { event: 'instruction', symbol: 'ntdll!NtReadFile+0xc', what: 'ret 24h' }, 'ends with the stub\'s ret');
  const seqs = path.map((p) => p.seq);
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'in seq order');
  t.same([...new Set(seqs)].length, seqs.length, 'each event once');
  const kinds = path.filter((p) => p.event !== 'instruction').map((p) => p.event);
  t.same([...new Set(kinds)].sort(), ['apc-check', 'handle-lookup', 'msr-read', 'probe', 'ring-transition', 'service-enter', 'service-exit', 'ssdt-lookup'].sort());
  const rings = path.filter((p) => p.event === 'ring-transition').map((p) => p.what);
  t.match(rings, [/^sysenter: ring 3 → 0, to nt!KiFastCallEntry/, /^sysexit: ring 0 → 3, to SharedUserData!SystemCallStub\+0x4/]);
  t.ok(path.some((p) => p.event === 'ssdt-lookup' && p.what.includes('→ nt!NtReadFile (8056b2ec), 36 argument bytes')));
  t.ok(path.some((p) => p.symbol === 'SharedUserData!SystemCallStub' && p.what === 'mov edx,esp'));
  t.ok(path.some((p) => p.event === 'service-exit' && p.what === 'NtReadFile returns STATUS_SUCCESS (0x00000000)'));
});

t.test('--named ssdt shows the SSDT hook; rings, apc and msr read the log alone', async (t) => {
  const ssdt = JSON.parse(await named(hook, 'ssdt', { format: 'json' })) as Record<string, unknown>[];
  const b7 = ssdt.find((r) => r.number === '0xB7')!;
  t.match(b7, { target_symbol: 'ssdt-hook!HookNtReadFile', expected: 'nt!NtReadFile', called: 'ssdt-hook!HookNtReadFile', verdict: 'SSDT hook' });
  t.ok(ssdt.filter((r) => r !== b7).every((r) => r.verdict === 'ok'));
  const rings = JSON.parse(await named(osr, 'rings', { session: 'nt-read', format: 'json' })) as Record<string, unknown>[];
  t.equal(rings.length % 2, 1, 'in and out for every call but the last, NtTerminateProcess');
  t.same(rings.map((r) => r.mechanism), rings.map((_, i) => (i % 2 ? 'sysexit' : 'sysenter')));
  t.match(rings[0], { mechanism: 'sysenter', from_cpl: 3, to_cpl: 0, to_eip: '8053a270', to_symbol: 'nt!KiFastCallEntry' });
  t.match(rings[1], { mechanism: 'sysexit', from_cpl: 0, to_cpl: 3 });
  const apc = JSON.parse(await named(osr, 'apc', { format: 'json' })) as Record<string, unknown>[];
  t.ok(apc.length > 0);
  t.ok(apc.every((a) => a.returning_to_cpl === 3 && a.delivered === 0));
  const msr = await named(osr, 'msr', { format: 'csv' });
  t.match(msr, /^seq,thread,access,source,msr,value,symbol,at\n/);
  t.match(msr, /,read,sysenter,0x176,0x8053A270,nt!KiFastCallEntry,SharedUserData!SystemCallStub\+0x2\n/);
});

t.test('the first query builds the projections a recording leaves out, and later queries keep them current', async (t) => {
  const fresh = join(dir, 'fresh.db');
  await record({ scenario: 'kernel-nt-readfile' }, { output: fresh });
  const tables = (file: string) => new Database(file, { readonly: true }).prepare("SELECT name FROM sqlite_master WHERE name IN ('syscalls', 'projections')").pluck().all();
  t.same(tables(fresh), [], 'record itself builds no projection');
  const csv = await q(fresh, "SELECT name, previous_mode, entry, status_name FROM syscalls WHERE name = 'NtReadFile' AND caller_cpl = 0", { format: 'csv' });
  t.equal(csv, 'name,previous_mode,entry,status_name\nNtReadFile,UserMode,nt-direct,STATUS_INVALID_HANDLE\n', 'the first query sees the projection of the new session');
  const digest = () => new Database(fresh, { readonly: true }).prepare("SELECT digest FROM projections WHERE name = 'syscalls'").pluck().all();
  const first = digest();
  await record({ scenario: 'kernel-zw-readfile' }, { output: fresh, name: 'zw' });
  const zw = await q(fresh, "SELECT previous_mode, entry, status_name FROM syscalls WHERE name = 'NtReadFile' AND caller_cpl = 0 AND session_id = :session", { format: 'csv', session: 'zw' });
  t.match(zw, /KernelMode,zw-kernel,STATUS_SUCCESS/, 'a session recorded later is folded by the next query');
  t.same(digest().slice(0, 1), first, "the earlier session's projection is left as it was");
});
