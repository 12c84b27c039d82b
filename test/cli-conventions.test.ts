// Issue K §3, the numbers and names a person reads, through the real CLI:
// - `query`'s tables print addresses, handles and NTSTATUS in hex (WinDbg's way), `--decimal`
//   prints the stored integers, CSV and JSON always carry the integers; expressions stay decimal;
// - one syscall reference across a file: `--syscall SESSION:ID` names the session and the call in
//   query --named path, explain, flow and export, agrees with --session or says it does not, and a
//   named query's table says whose call ids it shows.
//   npx tsc -p tsconfig.json && npx tap dist/test/cli-conventions.test.js
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ntflow, type CliOutput } from './util/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-cli-conventions-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const FILE = join(dir, 'two.db');

/** Session 1 fails three NtWriteFile calls; session 2 (the latest) fails none. */
t.before(async () => {
  for (const s of ['osr-log-user-handle', 'user-nt-readfile']) {
    const r = await ntflow(['record', s, '-o', FILE]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  const r = await ntflow(['replay', FILE]); // projections of both sessions
  if (r.code !== 0) throw new Error(r.stderr);
});

const rows = (sql: string, ...args: unknown[]) => {
  const db = new Database(FILE, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...args) as Record<string, number | string | null>[];
  } finally {
    db.close();
  }
};

/** A table's rows as objects, by its header line (cells are separated by two spaces or more). */
function table(stdout: string): Record<string, string>[] {
  const lines = stdout.split('\n').filter((l) => l !== '' && !/^\(\d+ rows?\)$/.test(l) && !/^session \d+ /.test(l));
  const head = lines[0].trim().split(/\s{2,}/);
  return lines.slice(2).map((l) => {
    const cells = l.trim().split(/\s{2,}/);
    return Object.fromEntries(head.map((h, i) => [h, cells[i]]));
  });
}

const ok = (t: Test, r: CliOutput, what: string) => t.equal(r.code, 0, `${what}: exit 0 (${r.stderr.slice(0, 200)})`);
const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

t.test('tables show addresses, handles and NTSTATUS in hex; --decimal and CSV/JSON keep the integers', async (t) => {
  const truth = rows('SELECT seq, eip, handle, status, object, granted_access FROM handle_lookups WHERE session_id = 1 AND object IS NOT NULL ORDER BY seq');
  t.ok(truth.length >= 3, 'session 1 finds objects through handles');
  const sql = 'SELECT seq, eip, handle, status, object, granted_access, eip + 0 AS plain FROM handle_lookups WHERE session_id = 1 AND object IS NOT NULL ORDER BY seq';
  const hexRun = await ntflow(['query', FILE, sql]);
  ok(t, hexRun, 'table');
  const shown = table(hexRun.stdout);
  t.equal(shown.length, truth.length, 'every row');
  shown.forEach((s, i) => {
    const r = truth[i] as Record<string, number>;
    t.equal(s.seq, String(r.seq), `row ${i}: seq stays decimal`);
    t.equal(s.eip, hex8(r.eip), `row ${i}: eip as 8 hex digits`);
    t.equal(s.handle, `0x${r.handle.toString(16).toUpperCase()}`, `row ${i}: handle 0x-prefixed`);
    t.equal(s.status, `0x${(r.status >>> 0).toString(16).toUpperCase().padStart(8, '0')}`, `row ${i}: NTSTATUS as 0x%08X`);
    t.equal(s.object, hex8(r.object), `row ${i}: object address`);
    t.equal(s.granted_access, `0x${r.granted_access.toString(16).toUpperCase()}`, `row ${i}: access mask`);
    t.equal(s.plain, String(r.eip), `row ${i}: an expression stays decimal`);
  });
  const failing = await ntflow(['query', FILE, 'SELECT service, status FROM service_exits WHERE session_id = 1 AND status >= 0xC0000000 ORDER BY seq']);
  t.match(failing.stdout, /NtWriteFile\s+0xC0000008/, 'STATUS_INVALID_HANDLE reads as 0xC0000008');
  t.match(failing.stdout, /NtWriteFile\s+0xC0000005/, 'STATUS_ACCESS_VIOLATION reads as 0xC0000005');

  const dec = table((await ntflow(['query', FILE, sql, '--decimal'])).stdout);
  dec.forEach((s, i) => {
    const r = truth[i] as Record<string, number>;
    t.same([s.eip, s.handle, s.status, s.object], [r.eip, r.handle, r.status, r.object].map(String), `row ${i}: --decimal prints the stored integers`);
  });
  const json = JSON.parse((await ntflow(['query', FILE, sql, '--format', 'json'])).stdout) as Record<string, number>[];
  t.same(json.map((r) => r.eip), truth.map((r) => r.eip), 'JSON carries integers');
  const csv = (await ntflow(['query', FILE, sql, '--format', 'csv'])).stdout.trim().split('\n').slice(1);
  t.same(csv.map((l) => Number(l.split(',')[1])), truth.map((r) => r.eip), 'CSV carries integers');

  // Through views: events (a UNION ALL) and instructions (a join) keep their origin columns.
  const ev = table((await ntflow(['query', FILE, 'SELECT seq, eip FROM events WHERE session_id = 2 ORDER BY seq LIMIT 3'])).stdout);
  const evTruth = rows('SELECT seq, eip FROM events WHERE session_id = 2 ORDER BY seq LIMIT 3');
  t.same(ev.map((r) => r.eip), evTruth.map((r) => hex8(r.eip as number)), 'events.eip in hex');
  const msr = table((await ntflow(['query', FILE, "SELECT msr, value FROM msr_reads WHERE session_id = 2 AND msr = 0x176 LIMIT 1"])).stdout);
  t.same(msr, [{ msr: '0x176', value: '0x8053A270' }], 'MSR 0x176 = nt!KiFastCallEntry, as a person writes it');
});

t.test('SESSION:ID names one call everywhere, and the session it is in', async (t) => {
  // The latest session is 2; session 1's third failure is what a user saw in `--named failures --session 1`.
  const failures = rows("SELECT id FROM syscalls WHERE session_id = 1 AND status >= 0xC0000000 ORDER BY id");
  t.equal(failures.length, 3, 'session 1 has three failed calls');
  const id = failures[0].id as number;
  const inLatest = rows('SELECT count(*) AS n FROM syscalls WHERE session_id = 2 AND id = ?', id)[0].n;

  const path = await ntflow(['query', FILE, '--named', 'path', '--syscall', `1:${id}`]);
  ok(t, path, 'query --named path --syscall 1:ID');
  t.match(path.stdout.split('\n')[0], /^session 1 'osr-log-user-handle'$/, 'the table says whose call it is');
  t.match(path.stdout, /NtWriteFile/, 'the path of session 1\'s failed NtWriteFile');
  const byName = await ntflow(['query', FILE, '--named', 'path', '--syscall', `osr-log-user-handle:${id}`]);
  t.equal(byName.stdout, path.stdout, 'a session name works as well as its id');
  const both = await ntflow(['query', FILE, '--named', 'path', '--syscall', `1:${id}`, '--session', '1']);
  t.equal(both.stdout, path.stdout, '--session agreeing with the reference is fine');

  const explain = await ntflow(['explain', FILE, '--syscall', `1:${id}`, '--json']);
  ok(t, explain, 'explain --syscall 1:ID');
  const ex = JSON.parse(explain.stdout) as { session: { id: number }; findings: { syscall_id: number; cause: string }[] };
  t.equal(ex.session.id, 1, 'explain works on session 1');
  t.ok(ex.findings.length > 0 && ex.findings.every((f) => f.syscall_id === id), 'the findings about that call');

  const svg = join(dir, 'one.svg');
  const flow = await ntflow(['flow', FILE, '--syscall', `1:${id}`, '-o', svg]);
  ok(t, flow, 'flow --syscall 1:ID');
  t.match(flow.stdout, /diagram of session 1,/, 'flow says which session it drew');
  t.match(readFileSync(svg, 'utf8'), /NtWriteFile/, 'and drew the NtWriteFile call');

  const exp = await ntflow(['export', FILE, '--format', 'mermaid', '--syscall', `1:${id}`, '-o', join(dir, 'one.mmd')]);
  ok(t, exp, 'export --syscall 1:ID');
  t.match(exp.stderr, /^ntflow export: session 1, mermaid/, 'export says which session it wrote');
  t.match(readFileSync(join(dir, 'one.mmd'), 'utf8'), /NtWriteFile/, 'the exported call is session 1\'s NtWriteFile');

  const bare = await ntflow(['query', FILE, '--named', 'path', '--syscall', String(id)]);
  if (inLatest) t.match(bare.stdout.split('\n')[0], /^session 2 'user-nt-readfile'/, 'a bare id is in the latest session, and the table says so');
  else t.match(bare.stderr, /^ntflow: no syscall \d+ in session 2/, 'a bare id is looked up in the latest session');

  const errors: [string[], RegExp][] = [
    [['query', FILE, '--named', 'path', '--syscall', `1:${id}`, '--session', '2'], /^ntflow: --syscall 1:\d+ is in session 1, but --session 2 is session 2; give one of them$/],
    [['flow', FILE, '--syscall', '1:1', '--syscall', '2:1', '-o', svg], /^ntflow: --syscall 1:1 and --syscall 2:1 are in different sessions \(1 and 2\); draw one session at a time$/],
    [['explain', FILE, '--syscall', 'nosuch:1'], /^ntflow: no session 'nosuch' in this trace/],
    [['export', FILE, '--format', 'mermaid', '--syscall', '1:999'], /^ntflow: no syscall 999 in session 1 /],
    [['query', FILE, '--named', 'path', '--syscall', '1:x'], /is not a syscall reference \(ID or SESSION:ID/],
    [['flow', FILE, '--syscall', '2:', '-o', svg], /is not a syscall reference \(ID or SESSION:ID/],
  ];
  for (const [args, message] of errors) {
    const r = await ntflow(args);
    t.equal(r.code, 1, `${args.slice(2).join(' ')}: exit 1`);
    t.equal(r.stderr.trimEnd().split('\n').length, 1, `${args.slice(2).join(' ')}: one line`);
    t.match(r.stderr.trimEnd().replace(/^error: option '--syscall <ref>' argument '2:' is invalid\. /, 'ntflow: '), message, `${args.slice(2).join(' ')}: says what is wrong`);
  }
});

t.test("a named query's table names its session; CSV and JSON stay data", async (t) => {
  const latest = await ntflow(['query', FILE, '--named', 'syscalls']);
  t.match(latest.stdout.split('\n')[0], /^session 2 'user-nt-readfile' \(the latest of 2; --session S or --syscall S:ID for another\)$/);
  const chosen = await ntflow(['query', FILE, '--named', 'failures', '--session', '1']);
  t.match(chosen.stdout.split('\n')[0], /^session 1 'osr-log-user-handle'$/);
  t.equal(table(chosen.stdout).length, 3, 'its three failures');
  const csv = await ntflow(['query', FILE, '--named', 'syscalls', '--format', 'csv']);
  t.match(csv.stdout, /^id,/, 'CSV starts with its header');
  const json = await ntflow(['query', FILE, '--named', 'syscalls', '--format', 'json']);
  t.ok(Array.isArray(JSON.parse(json.stdout)), 'JSON parses');
});
